"""`rlhfkit chat`: driven through a pipe as a user drives it, and the history a policy conditions on."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from rlhfkit import chat
from rlhfkit.config import ChatConfig
from rlhfkit.engines import Generation
from rlhfkit.models.lm import load_causal_lm, save_model
from rlhfkit.rollout.generate import prompt_tokens

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
TURNS = "hello there\nwhat now?\n"
# a ChatML-like template that writes BOS itself and closes each turn with EOS, as SmolLM2's does
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory, tiny_model_dir):
    """A second tiny policy for --vs: the same architecture and tokenizer, other weights."""
    model, tok = load_causal_lm(tiny_model_dir)
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("other") / "model"
    save_model(path, type(model)(model.config), tok)
    return path


def rlhfkit_chat(*args, stdin: str = TURNS) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlhfkit.cli", "chat", *map(str, args)], input=stdin,
                          capture_output=True, text=True, env=ENV, timeout=300)


def answers(stdout: str) -> list[tuple[str, str]]:
    """(name, first line of the answer) per answer; an answer's later lines are indented under it."""
    return [tuple(line.split(": ", 1)) if ": " in line else (line.rstrip(":"), "")
            for line in stdout.split("\n") if line and not line.startswith(" ")]


@pytest.fixture(scope="module")
def piped(tiny_model_dir, other_model_dir):
    """stdout of one policy, and twice of two side by side, all on seed 3; the names they print."""
    common = ["--seed", 3, "--max_new_tokens", 12]
    runs = {"one": rlhfkit_chat("--policy", tiny_model_dir, *common),
            "vs": rlhfkit_chat("--policy", tiny_model_dir, "--vs", other_model_dir, *common),
            "vs_again": rlhfkit_chat("--policy", tiny_model_dir, "--vs", other_model_dir, *common)}
    for proc in runs.values():
        assert proc.returncode == 0, proc.stderr[-3000:]
    return {k: p.stdout for k, p in runs.items()}, chat.policy_names([str(tiny_model_dir), str(other_model_dir)])


def test_one_policy_answers_each_piped_line_in_order(piped):
    out, (name, _) = piped
    assert [n for n, _ in answers(out["one"])] == [name, name]
    assert not out["one"].startswith(chat.MARKER)          # a pipe gets no prompt marker


def test_vs_answers_beside_each_turn_with_its_own_history(piped):
    out, (a, b) = piped
    assert a != b
    assert [n for n, _ in answers(out["vs"])] == [a, b, a, b]
    # the first policy answers as it does alone: --vs shares no history with it, nor draws its randomness
    assert [t for n, t in answers(out["vs"]) if n == a] == [t for _, t in answers(out["one"])]


def test_the_same_seed_gives_the_same_chat(piped):
    out, _ = piped
    assert out["vs"] == out["vs_again"]


@pytest.mark.parametrize("which", ["--policy", "--vs"])
def test_a_missing_policy_is_one_line_and_exit_2(tiny_model_dir, tmp_path, which):
    args = ["--policy", tmp_path / "nope"] if which == "--policy" else ["--policy", tiny_model_dir, "--vs",
                                                                        tmp_path / "nope"]
    proc = rlhfkit_chat(*args)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr and "nope" in proc.stderr, proc.stderr
    assert proc.stdout == ""


# ---- The history a policy conditions on ------------------------------------------------------
def recording(monkeypatch, fake: list[int] | None = None) -> list[tuple[list[int], list[int]]]:
    """(context, sampled ids) of every sample call; with `fake`, every turn samples those ids."""
    calls, real = [], chat.sample

    def sample(model, tokenizer, ids, mask, **kw):
        out = real(model, tokenizer, ids, mask, **kw) if fake is None else Generation(
            ids=torch.tensor([fake]), mask=torch.ones(1, len(fake), dtype=torch.long),
            logprobs=torch.zeros(1, len(fake)), finished=torch.tensor([fake[-1] == tokenizer.eos_token_id]))
        calls.append((ids[0].tolist(), out.ids[0][out.mask[0] > 0].tolist()))
        return out
    monkeypatch.setattr(chat, "sample", sample)
    return calls


def side_of(model_dir, template: str | None = None, system: str = "") -> chat.Side:
    model, tok = load_causal_lm(model_dir)
    tok.chat_template = template
    opening = [{"role": "system", "content": system}] if system else []
    return chat.Side("tiny", model, tok, chat.renderer(tok, "auto", str(model_dir)), opening)


def talk(side: chat.Side, *turns: str) -> list[str]:
    return [chat.answer(side, t, temperature=1.0, max_new_tokens=10, seed=i) for i, t in enumerate(turns)]


def test_turn_two_conditions_on_turn_ones_sampled_ids(tiny_model_dir, monkeypatch):
    side = side_of(tiny_model_dir)         # no chat template: the conversation world's lines
    calls = recording(monkeypatch)
    talk(side, "hello there", "what now?")
    (first, turn_one), (second, turn_two) = calls
    tok = side.tokenizer
    assert first == prompt_tokens("USER: hello there\nASSISTANT:", tok, 10_000)
    # turn 1 exactly as sampled, then the next user turn as the environment's observation is appended
    assert second == first + turn_one + tok("\nUSER: what now?\nASSISTANT:", add_special_tokens=False)["input_ids"]
    assert side.ids == second + turn_two
    assert tok.decode(turn_one, skip_special_tokens=True).strip() == side.messages[1]["content"]


def test_the_tokenizers_chat_template_is_used_and_sampled_ids_are_kept(tiny_model_dir, monkeypatch):
    side = side_of(tiny_model_dir, TEMPLATE, system="be brief")
    tok = side.tokenizer
    # ids no tokenizer would give for their text: a merged token spelled out letter by letter, then EOS
    word = max(tok.get_vocab(), key=lambda t: len(t) if t.isalpha() else 0)
    fake = [tok.convert_tokens_to_ids(ch) for ch in word] + [tok.eos_token_id]
    assert tok(tok.decode(fake, skip_special_tokens=True), add_special_tokens=False)["input_ids"] != fake[:-1]
    calls = recording(monkeypatch, fake)
    talk(side, "hello there", "what now?")
    (first, _), (second, _) = calls
    opening = "<|system|>be brief</s><|user|>hello there</s><|assistant|>"
    assert first == [tok.bos_token_id] + tok(opening, add_special_tokens=False)["input_ids"]   # one BOS, not two
    # turn 1 stays the sampled ids, its EOS closing the turn where the template writes </s>
    assert second == first + fake + tok("<|user|>what now?</s><|assistant|>", add_special_tokens=False)["input_ids"]


def test_a_template_can_be_asked_for_and_refused(tiny_model_dir):
    model, tok = load_causal_lm(tiny_model_dir)
    with pytest.raises(chat.ModelError, match="no chat template"):
        chat.renderer(tok, "tokenizer", str(tiny_model_dir))
    tok.chat_template = TEMPLATE
    assert chat.renderer(tok, "conversation", "x") is chat.conversation.render


def test_a_conversation_past_the_context_stops_with_one_line(tiny_model_dir):
    side = side_of(tiny_model_dir)
    with pytest.raises(chat.RunError, match="past the model's context of 512"):
        chat.answer(side, "hello " * 600, temperature=1.0, max_new_tokens=10, seed=0)
    assert side.ids == [] and side.messages == []         # nothing half-appended


def test_policy_names():
    assert chat.policy_names(["runs/sft", "runs/ppo/model/"]) == ["sft", "ppo"]
    assert chat.policy_names(["a/sft", "b/sft"]) == ["a/sft", "b/sft"]
    assert ChatConfig().temperature == 0.7 and ChatConfig().max_new_tokens == 64
