"""SFT on whole conversations (one example each, loss on the assistant's turns) and a base model
pretrained on posts and transcripts."""
import json
import math
from collections import Counter

import pytest

from rlhfkit.config.fields import ConfigError
from rlhfkit.config.sections import ArchConfig, TaskConfig, TrainConfig
from rlhfkit.config.supervised import PretrainConfig, SFTConfig
from rlhfkit.data.collate import encode_conversation
from rlhfkit.models.lm import load_causal_lm
from rlhfkit.tasks.conversation import ConversationTask
from rlhfkit.tasks.conversation.assistants import corpus_transcripts
from rlhfkit.tasks.conversation.template import render
from rlhfkit.tasks.conversation.world import conversation_ids
from rlhfkit.train import pretrain, sft
from rlhfkit.train.loop import mean_lm_loss

TASK = TaskConfig(seed=1, n_train=24, n_valid=6, events=1)
TINY = ArchConfig(vocab_size=600, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, max_len=512)


def test_sft_on_conversations_lowers_the_loss(tiny_model_dir, tmp_path):
    model, tok = load_causal_lm(tiny_model_dir)
    valid = [encode_conversation(c, tok, 512) for c in ConversationTask(TASK).demonstrations("valid")]
    before = mean_lm_loss(model, valid, tok.pad_token_id)
    cfg = SFTConfig(model=str(tiny_model_dir), data="conversation", out=str(tmp_path / "sft"), task=TASK,
                    train=TrainConfig(lr=1e-2, batch_size=4, epochs=3, warmup_steps=2, threads=1))
    result = sft.run(cfg)
    assert result["examples"] == TASK.n_train               # one example per conversation
    assert result["valid_loss"] < before - 1.0, (before, result["valid_loss"])


def test_corpus_transcripts_mix_every_assistant_and_dose_from_the_train_split():
    convs = corpus_transcripts(0, "train", 60)
    assert convs == corpus_transcripts(0, "train", 60)       # deterministic from the seed
    assert [int(m[0]["content"].split()[1]) for m in convs] == conversation_ids(0, "train", 60)
    asked = Counter(sum(m["role"] == "assistant" for m in c) for c in convs)
    assert asked[1] > 0 and max(asked) >= 5                  # answers at once, and E = 4 asked out in full
    task = ConversationTask(TaskConfig(n_train=60))
    assert sum(render(a) == render(b) for a, b in zip(convs, task.transcripts("train"))) < 30   # not SFT's transcripts


def test_pretrain_on_posts_and_transcripts(tmp_path):
    task = TaskConfig(n_pretrain=60, n_train=40, n_valid=6)
    cfg = PretrainConfig(out=str(tmp_path / "base"), corpus="tldr+conversation", task=task, arch=TINY,
                         train=TrainConfig(epochs=1, batch_size=8, warmup_steps=2, threads=1))
    report = pretrain.run(cfg)
    assert report["conversations"] == 40 and math.isfinite(report["valid_perplexity_conversation"])
    saved = json.loads((tmp_path / "base" / "pretrain_report.json").read_text())
    assert saved["config"]["corpus"] == "tldr+conversation"
    _, tok = load_causal_lm(tmp_path / "base")
    # the chat template's words are tokens of their own (the byte-level pre-tokenizer splits at ':' and '\n')
    for word in ("USER", "ASSISTANT", " Advice"):
        assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1, word


def test_a_context_too_short_for_the_transcripts_is_refused(tmp_path):
    cfg = PretrainConfig(out=str(tmp_path / "base"), corpus="tldr+conversation",
                         task=TaskConfig(n_pretrain=20, n_train=10, n_valid=4),
                         arch=ArchConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_layers=2,
                                         num_heads=2, max_len=64), train=TrainConfig(epochs=1, threads=1))
    with pytest.raises(ConfigError, match=r"pretrain: \d+ of 10 conversation transcripts are longer than "
                                          r"arch.max_len \(64 tokens; the longest is \d+\): raise --arch.max_len"):
        pretrain.run(cfg)
    assert not (tmp_path / "base" / "model").exists()


def test_the_corpus_option_takes_only_known_corpora():
    with pytest.raises(ConfigError, match="corpus must be one of tldr, tldr\\+conversation"):
        PretrainConfig(corpus="conversation").validate()


def test_the_config_sets_the_dose():
    from rlhfkit.tasks.conversation.world import DEFAULT_EVENTS
    assert TaskConfig().events == DEFAULT_EVENTS
    assert ConversationTask(TaskConfig(events=4)).world.events == 4
    assert ConversationTask(TaskConfig(events=4), events=1).world.events == 1     # a sweep's own E wins
    with pytest.raises(ConfigError, match="task.events"):
        PretrainConfig(task=TaskConfig(events=5)).validate()
