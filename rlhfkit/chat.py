"""`rlhfkit chat`: talk to a policy, or to two side by side, in a terminal or through a pipe.

    rlhfkit chat --policy runs/ppo                                  # type a turn, Enter; Ctrl-D ends
    printf 'hi\\nand then?\\n' | rlhfkit chat --policy runs/sft --vs runs/ppo --seed 0

Each policy keeps its conversation as token ids, the way `rollout/episodes.py` keeps an episode:
the opening and each user turn are tokenised text, each of its own turns is the sampler's ids as
they came (EOS included), never its decoded text tokenised again, which can split differently; so
a policy conditions on exactly what it produced. The text around the turns is the tokenizer's chat
template when it has one (SmolLM2's), else the conversation world's `USER: ...` / `ASSISTANT:`
lines (`tasks/conversation/template.py`).
"""
from __future__ import annotations

import secrets
import sys
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rlhfkit.config.chat import ChatConfig
from rlhfkit.data.records import chat_template_of
from rlhfkit.errors import ModelError, RunError
from rlhfkit.models.lm import context_length, load_causal_lm, resolve_model_dir
from rlhfkit.rollout.generate import prompt_tokens, sample
from rlhfkit.tasks.conversation import template as conversation

Message = dict[str, str]
Render = Callable[[list[Message]], str]      # messages ending with the user's -> text up to the answer

# stands in for an assistant turn the policy already holds as ids: what a template writes after it
# is what the next user turn appends
HELD_TURN = "\u2063held-turn\u2063"
MARKER = "> "       # the prompt shown in a terminal; a pipe gets none


@dataclass
class Side:
    """One policy in the chat and its own conversation."""
    name: str
    model: Any
    tokenizer: Any
    render: Render
    messages: list[Message] = field(default_factory=list)   # the conversation as text, for the template
    ids: list[int] = field(default_factory=list)            # what the model conditions on: the same, as ids


def renderer(tokenizer, choice: str, where: str) -> Render:
    """The tokenizer's chat template (choice 'tokenizer', or 'auto' when it has one), else the
    conversation world's lines; a template's own error becomes a one-line ModelError."""
    template = chat_template_of(tokenizer)
    if choice == "tokenizer" and template is None:
        raise ModelError(f"{where}: the tokenizer has no chat template (use --template conversation or auto)")
    if template is None or choice == "conversation":
        return conversation.render

    def render(messages: list[Message]) -> str:
        try:
            return template(messages)
        except Exception as e:  # noqa: BLE001 -- templates are Jinja and raise what they like
            raise ModelError(f"{where}: the tokenizer's chat template refuses the conversation "
                             f"({' '.join(str(e).split())[:200]})") from None
    return render


def policy_names(paths: list[str]) -> list[str]:
    """Short names for the answers' prefixes: a stage directory's name (runs/ppo/model -> ppo); the
    paths as given when two short names would be the same."""
    names = []
    for path in paths:
        p = Path(path.rstrip("/") or path)
        names.append(p.parent.name if p.name == "model" and p.parent.name else p.name or path)
    return names if len(set(names)) == len(names) else list(paths)


def open_side(name: str, path: str, cfg: ChatConfig) -> Side:
    model, tokenizer = load_causal_lm(path)
    opening = [{"role": "system", "content": cfg.system}] if cfg.system else []
    return Side(name, model, tokenizer, renderer(tokenizer, cfg.template, path), opening)


def opening_ids(text: str, tokenizer) -> list[int]:
    """BOS and the text, as SFT and rollouts begin a prompt; a template that writes BOS itself
    (SmolLM2's `<|im_start|>`) gets no second one."""
    bos = tokenizer.bos_token
    if bos and text.startswith(bos):
        text = text[len(bos):]
    return prompt_tokens(text, tokenizer, sys.maxsize)    # the room is checked by `answer`, for every turn


def user_ids(side: Side, user: Message) -> list[int]:
    """The ids a user turn appends: on the first turn the whole opening; later what the template
    writes between the last assistant turn (held as ids) and the next, less the EOS the policy
    already sampled when the template closes its turn with that very token."""
    if not side.ids:
        return opening_ids(side.render(side.messages + [user]), side.tokenizer)
    text = side.render(side.messages[:-1] + [{"role": "assistant", "content": HELD_TURN}, user])
    _, found, after = text.partition(HELD_TURN)
    if not found:
        raise ModelError(f"{side.name}: the chat template drops the assistant's turns, so a turn cannot be "
                         "kept as the ids sampled (use --template conversation)")
    tok = side.tokenizer
    if side.ids[-1] == tok.eos_token_id:
        after = after.removeprefix(tok.eos_token)
    return tok(after, add_special_tokens=False)["input_ids"]


def answer(side: Side, text: str, *, temperature: float, max_new_tokens: int, seed: int, engine: str = "auto") -> str:
    """The policy's answer to a user turn; both stay in its history (the answer as its sampled ids)."""
    user = {"role": "user", "content": text}
    new = user_ids(side, user)
    context = context_length(side.model)
    if len(side.ids) + len(new) + max_new_tokens > context:
        raise RunError(f"{side.name}: the conversation is {len(side.ids) + len(new)} tokens and an answer may take "
                       f"{max_new_tokens} more, past the model's context of {context}; start a new chat (or lower "
                       "--max_new_tokens)")
    side.ids += new
    side.messages.append(user)
    torch.manual_seed(seed)
    ids = torch.tensor([side.ids], dtype=torch.long)
    out = sample(side.model, side.tokenizer, ids, torch.ones_like(ids), temperature=temperature,
                 max_new_tokens=max_new_tokens, engine=engine)
    turn = out.ids[0][out.mask[0] > 0].tolist()
    side.ids += turn
    reply = side.tokenizer.decode(turn, skip_special_tokens=True).strip()
    side.messages.append({"role": "assistant", "content": reply})
    return reply


def shown(name: str, reply: str) -> str:
    """'name: reply', later lines of a reply indented under the first, so each answer starts one line.
    Any line break a model writes (\\r and \\v too) becomes a newline, and other control characters
    become U+FFFD: a bare \\r would overwrite the name, an escape sequence would drive the terminal."""
    lines = ["".join("\ufffd" if unicodedata.category(c) == "Cc" and c != "\t" else c for c in line)
             for line in reply.splitlines()]
    return f"{name}: " + ("\n" + " " * (len(name) + 2)).join(lines or [""])


def user_turns(terminal: bool) -> Iterator[str]:
    """The user's turns from stdin, one non-blank line each, until EOF (a pipe's end, or Ctrl-D)."""
    while True:
        if terminal:
            try:
                line = input(MARKER)
            except EOFError:
                print()
                return
        else:
            line = sys.stdin.readline()
            if not line:
                return
        if line.strip():
            yield line.strip()


def converse(sides: list[Side], turns: Iterator[str], cfg: ChatConfig, seed: int) -> None:
    """Every policy answers each user turn in order. One seed per turn, the same for each policy
    (common random numbers): a policy answers as it would without --vs beside it."""
    for turn, text in enumerate(turns):
        for side in sides:
            reply = answer(side, text, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                           seed=seed * 1_000 + turn, engine=cfg.engine)
            print(shown(side.name, reply), flush=True)


def run(cfg: ChatConfig) -> None:
    cfg.validate()
    paths = [p for p in (cfg.policy, cfg.vs) if p]
    for path in paths:      # both, before either (slow) load
        where = resolve_model_dir(path)
        if not where.is_dir():
            raise ModelError(f"{path}: {'not a directory' if where.exists() else 'no such directory'}")
    sides = [open_side(name, path, cfg) for name, path in zip(policy_names(paths), paths)]
    seed = cfg.seed if cfg.seed >= 0 else secrets.randbelow(2**31)
    terminal = sys.stdin.isatty()
    if terminal:
        try:
            import readline  # noqa: F401 -- line editing and history for input()
        except ImportError:
            pass
        print(f"chat with {' and '.join(s.name for s in sides)} (seed {seed}); one line a turn, Ctrl-D ends",
              file=sys.stderr)
    converse(sides, user_turns(terminal), cfg, seed)
