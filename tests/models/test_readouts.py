"""Reward read-outs (`rlhfkit rm --readout`): each gives the number its definition says, the same
through every path that scores (whole sequences, groups sharing a prompt, rollouts)."""
import pytest
import torch

from rlhfkit.data.collate import IGNORE, encode_demonstration, pad_batch
from rlhfkit.data.records import Demonstration
from rlhfkit.errors import ModelError
from rlhfkit.models.heads import (check_readout, group_rewards, scalar_model_from_lm, sequence_rewards,
                                  token_values)
from rlhfkit.models.lm import load_causal_lm
from rlhfkit.rollout.generate import generate
from rlhfkit.rollout.score import reward_model_fn

PAIRS = [("POST: i did call my mom\nTL;DR:", " called mom."), ("POST: i did call my mom\nTL;DR:", " did not call."),
         ("POST: the dog ran off\nTL;DR:", " dog gone, sad and long answer here.")]


def reward_model(path, readout: str, weight: float = 0.7):
    torch.manual_seed(0)
    model, tok = scalar_model_from_lm(path)
    model.config.reward_readout, model.config.likelihood_weight = readout, weight
    model.config.reward_offset = 0.25
    return model.eval(), tok


def batch_of(tok, pairs=PAIRS):
    examples = [encode_demonstration(Demonstration(p, a), tok, 256) for p, a in pairs]
    return examples, pad_batch(examples, tok.pad_token_id)


@torch.no_grad()
def test_mean_readout_averages_the_head_over_the_answer(tiny_model_dir):
    model, tok = reward_model(tiny_model_dir, "mean")
    _, b = batch_of(tok)
    answer = b["labels"] != IGNORE
    values = token_values(model, b["input_ids"], b["attention_mask"])
    expected = torch.stack([values[i][answer[i]].mean() for i in range(len(PAIRS))]) - 0.25
    torch.testing.assert_close(sequence_rewards(model, b["input_ids"], b["attention_mask"], answer), expected)


@torch.no_grad()
def test_likelihood_readout_adds_the_answers_log_probability_under_the_lm(tiny_model_dir):
    model, tok = reward_model(tiny_model_dir, "likelihood", weight=0.7)
    eos_model, _ = reward_model(tiny_model_dir, "eos")
    lm, _ = load_causal_lm(tiny_model_dir)        # the same backbone with its (tied) LM head
    _, b = batch_of(tok)
    answer = b["labels"] != IGNORE
    logp = torch.log_softmax(lm(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1], -1)
    token_lp = logp.gather(-1, b["input_ids"][:, 1:, None]).squeeze(-1)
    mean_lp = torch.stack([token_lp[i][answer[i, 1:]].mean() for i in range(len(PAIRS))])
    eos = sequence_rewards(eos_model, b["input_ids"], b["attention_mask"])
    got = sequence_rewards(model, b["input_ids"], b["attention_mask"], answer)
    torch.testing.assert_close(got, eos + 0.7 * mean_lp, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="the likelihood read-out needs each row's answer tokens"):
        sequence_rewards(model, b["input_ids"], b["attention_mask"])


@pytest.mark.parametrize("readout", ["eos", "mean", "likelihood"])
@torch.no_grad()
def test_groups_and_rollouts_read_as_whole_sequences_do(tiny_model_dir, readout):
    model, tok = reward_model(tiny_model_dir, readout)
    examples, b = batch_of(tok)
    whole = sequence_rewards(model, b["input_ids"], b["attention_mask"], b["labels"] != IGNORE)
    masks = [[int(x != IGNORE) for x in ex.labels] for ex in examples]
    grouped = group_rewards(model, [ex.input_ids for ex in examples], [2, 1], tok.pad_token_id, masks)
    torch.testing.assert_close(grouped, whole, rtol=1e-4, atol=1e-5)
    # a rollout is scored on its own tokens: its answer is what the policy sampled (and the EOS)
    policy, _ = load_causal_lm(tiny_model_dir)
    prompts = [PAIRS[0][0], PAIRS[0][0], PAIRS[2][0]]
    r = generate(policy, tok, prompts, temperature=1.0, max_new_tokens=6, seed=3, engine="hf")
    rows = [torch.cat([p[pm.bool()], a[am.bool()]]).tolist() for p, pm, a, am in
            zip(r.prompt_ids, r.prompt_mask, r.response_ids, r.response_mask)]
    rows = [row if row[-1] == tok.eos_token_id else row + [tok.eos_token_id] for row in rows]
    lengths = [int(pm.sum()) for pm in r.prompt_mask]
    alone = [sequence_rewards(model, torch.tensor([row]), torch.ones(1, len(row), dtype=torch.long),
                              torch.tensor([[0] * n + [1] * (len(row) - n)])) for row, n in zip(rows, lengths)]
    torch.testing.assert_close(reward_model_fn(model, tok)(r, prompts), torch.cat(alone), rtol=1e-4, atol=1e-4)


def test_likelihood_readout_needs_a_tied_lm_head(tiny_model_dir):
    model, _ = scalar_model_from_lm(tiny_model_dir)
    check_readout(model, "likelihood")
    model.config.tie_word_embeddings = False
    check_readout(model, "mean")
    with pytest.raises(ModelError, match="the likelihood read-out needs an LM head tied to the input embeddings"):
        check_readout(model, "likelihood")
