"""The chat template: how a conversation's messages become the text a model reads.

    chat 123                                  <- the id line (a "system" message)
    USER: I need advice about my roommate. Am I overreacting here?
    ASSISTANT: What happened?                 <- the assistant's turn follows the header after a space
    USER: Well, my roommate Sam never paid the rent last week.
    ASSISTANT: TL;DR: ... Advice: ...

The environment's observation after an assistant turn is exactly the next user turn rendered,
header included (`observation`), which is what `rollout/episodes.py` appends after the turn's EOS,
so `render(messages)` of a whole conversation is the opening followed by the episode's text.
`as_conversation` cuts the same text where an episode's token ids are cut: the opening, each
assistant turn (EOS follows it in an episode), each observation tokenised on its own.
"""
from __future__ import annotations

from rlhfkit.data.records import Conversation, Span, Where

Message = dict[str, str]
USER, ASSISTANT = "\nUSER: ", "\nASSISTANT:"


def observation(reply: str) -> str:
    """The text appended after an assistant turn: the user's reply and the next assistant header."""
    return f"{USER}{reply}{ASSISTANT}"


def render(messages: list[Message]) -> str:
    """Messages ({"role": "system" | "user" | "assistant", "content"}) as text; ends with the
    assistant header when the last message is the user's, so a model continues with its turn."""
    parts = []
    for m in messages:
        if m["role"] == "system":
            parts.append(m["content"])
        elif m["role"] == "user":
            parts.append(observation(m["content"]))
        elif m["role"] == "assistant":
            parts.append(" " + m["content"])
        else:
            raise ValueError(f"conversation template: unknown role {m['role']!r}")
    return "".join(parts).removeprefix("\n")


def as_conversation(messages: list[Message], where: Where | None = None) -> Conversation:
    """A whole conversation (id line, first user turn, then assistant and user turns) as the pieces
    an episode holds; joined, the pieces are `render(messages)`."""
    first = next((i for i, m in enumerate(messages) if m["role"] == "assistant"), None)
    if first is None or not any(m["role"] == "user" for m in messages[:first]):
        raise ValueError(f"conversation template: {where or 'messages'}: needs a user turn, then an assistant turn")
    spans = []
    for m in messages[first:]:
        if m["role"] == "assistant":
            spans.append(Span(" " + m["content"], action=True))
        elif m["role"] == "user":
            spans.append(Span(observation(m["content"]), action=False))
        else:      # a system message belongs to the opening only
            raise ValueError(f"conversation template: {where or 'messages'}: a {m['role']!r} message after the first "
                             "assistant turn")
    return Conversation(render(messages[:first]), tuple(spans), where)


def messages_of(history: list[Message]) -> list[Message]:
    """An environment's history (formatted observations, raw decoded turns) as clean messages."""
    out: list[Message] = []
    for i, m in enumerate(history):
        text = m["content"]
        if m["role"] == "assistant":
            out.append({"role": "assistant", "content": text.strip()})
            continue
        if i == 0:   # the opening: the id line, then the first user turn
            head, _, text = ("\n" + text).partition(USER)
            if head.strip():
                out.append({"role": "system", "content": head.strip()})
            text = USER + text
        out.append({"role": "user", "content": text.removeprefix(USER).removesuffix(ASSISTANT).strip()})
    return out
