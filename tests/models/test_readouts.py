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
    model.config.verdict_prompt_ids = tok.encode("\nverdict:", add_special_tokens=False)
    model.config.verdict_token_ids = [tok.encode(" a", add_special_tokens=False)[-1],
                                      tok.encode(" b", add_special_tokens=False)[-1]]
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


@torch.no_grad()
def test_verdict_readout_is_the_lms_yes_minus_no_logit_after_the_verdict_prompt(tiny_model_dir):
    model, tok = reward_model(tiny_model_dir, "verdict")
    lm, _ = load_causal_lm(tiny_model_dir)
    yes, no = model.config.verdict_token_ids
    examples, b = batch_of(tok)
    expected = []
    for ex in examples:      # each alone, unpadded: prompt, answer, EOS, then the verdict prompt
        assert ex.input_ids[-1] == tok.eos_token_id
        logits = lm(input_ids=torch.tensor([ex.input_ids + model.config.verdict_prompt_ids])).logits[0, -1]
        expected.append(logits[yes] - logits[no] - 0.25)
    torch.testing.assert_close(sequence_rewards(model, b["input_ids"], b["attention_mask"]), torch.stack(expected),
                               rtol=1e-4, atol=1e-4)
    left = torch.stack([b["input_ids"][1].roll(3), b["input_ids"][2]])   # the same rows, one left-padded
    left_mask = torch.stack([b["attention_mask"][1].roll(3), b["attention_mask"][2]])
    assert left_mask[0, :3].sum() == 0
    torch.testing.assert_close(sequence_rewards(model, left, left_mask), torch.stack(expected[1:]),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("readout", ["eos", "mean", "likelihood", "verdict"])
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


@pytest.mark.parametrize("readout", ["likelihood", "verdict"])
def test_lm_head_readouts_need_a_tied_lm_head(tiny_model_dir, readout):
    model, _ = scalar_model_from_lm(tiny_model_dir)
    check_readout(model, readout)
    model.config.tie_word_embeddings = False
    check_readout(model, "mean")
    with pytest.raises(ModelError, match=f"the {readout} read-out needs an LM head tied to the input embeddings"):
        check_readout(model, readout)
