"""The chat template: how a conversation's messages become the text a model reads.

    chat 123                                  <- the id line (a "system" message)
    USER: I need advice about my roommate. Am I overreacting here?
    ASSISTANT: What happened?                 <- the assistant's turn follows the header after a space
    USER: Well, my roommate Sam never paid the rent last week.
    ASSISTANT: TL;DR: ... Advice: ...

The environment's observation after an assistant turn is exactly the next user turn rendered,
header included (`observation`), which is what `rollout/episodes.py` appends after the turn's EOS,
so `render(messages)` of a whole conversation is the opening followed by the episode's text.
"""
from __future__ import annotations

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
