"""Config of `rlhfkit chat`: talking to a policy, or to two side by side."""
from __future__ import annotations

from dataclasses import dataclass

from rlhfkit.config.fields import check_fields, opt
from rlhfkit.engines import CHOICES

TEMPLATES = ("auto", "tokenizer", "conversation")


@dataclass
class ChatConfig:
    """`rlhfkit chat`: talk to a policy, or to two side by side, in a terminal or through a pipe."""
    policy: str = opt("runs/sft", "the policy to talk to: a model directory or a stage directory (runs/ppo)")
    vs: str = opt("", "a second policy that answers the same user turns beside the first, keeping its own history")
    system: str = opt("", "a system message that opens the conversation (in the conversation world's format, "
                          "its first line, where the world puts the id line)")
    template: str = opt("auto", "how the turns become text: tokenizer (the model's chat template), conversation "
                                "(the conversation world's USER: / ASSISTANT: lines) or auto (the tokenizer's "
                                "when it has one)", choices=TEMPLATES)
    temperature: float = opt(0.7, "sampling temperature", gt=0)
    max_new_tokens: int = opt(64, "an answer's length limit in tokens (it ends earlier at EOS)", ge=1)
    engine: str = opt("auto", "generation engine (as --sample.engine of the training stages)", choices=CHOICES)
    # -1 by default: a chat that answers the same question the same way every session surprises
    seed: int = opt(-1, "sampling seed: the same seed and the same user turns give the same answers "
                        "(-1: a fresh seed each run)", ge=-1)

    def validate(self) -> None:
        check_fields(self)
