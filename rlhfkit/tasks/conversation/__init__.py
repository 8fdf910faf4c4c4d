"""The conversation world: a user who tells a post's facts only when asked, an assistant that must
gather them before its TL;DR and advice, and two gold measures (per turn, per conversation) that
rank policies differently."""
from rlhfkit.tasks.conversation.task import ConversationTask

__all__ = ["ConversationTask"]
