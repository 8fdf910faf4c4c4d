"""The RL registry: every algorithm has the same two entry points over the hand-off record, and
REINFORCE++ (the algorithm added through it) by hand."""
import dataclasses
import math

import pytest
import torch

from rlhfkit.algorithms import reinforce_pp
from rlhfkit.algorithms.registry import RL_ALGORITHMS, algorithm
from rlhfkit.config import GRPOOptions, PPOOptions, RLAlgoConfig, RLConfig
from rlhfkit.rollout.types import Experience, last_action_token

HP = RLAlgoConfig(k=2)
OWN = {"ppo": PPOOptions(), "grpo": GRPOOptions()}


def _experience(mask) -> Experience:
    b, r = mask.shape
    g = torch.Generator().manual_seed(0)
    return Experience(prompt_ids=torch.zeros(b, 2, dtype=torch.long), prompt_mask=torch.ones(b, 2, dtype=torch.long),
                      response_ids=torch.zeros(b, r, dtype=torch.long), response_mask=torch.ones(b, r, dtype=torch.long),
                      action_mask=mask, turn_ends=last_action_token(mask), logprobs=-torch.rand(b, r, generator=g),
                      rewards=last_action_token(mask) * torch.randn(b, 1, generator=g), texts=[""] * b,
                      ended=torch.ones(b, dtype=torch.bool), ref_logprobs=-torch.rand(b, r, generator=g),
                      values=torch.randn(b, r, generator=g))


@pytest.mark.parametrize("name", list(RL_ALGORITHMS))
def test_every_algorithm_reads_the_record_and_trains_only_action_tokens(name):
    mask = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 1.0]])
    exp = algorithm(name).advantages(_experience(mask), 0.1, HP, OWN.get(name))
    assert exp.advantages.shape == mask.shape and (exp.advantages[mask == 0] == 0).all()
    logprobs = exp.logprobs.clone().requires_grad_(True)
    values = exp.values.clone().requires_grad_(True) if RL_ALGORITHMS[name].critic else None
    loss, stats = algorithm(name).loss(exp, logprobs, values, 0.1, HP, OWN.get(name))
    loss.backward()
    assert math.isfinite(loss.item()) and stats["clipfrac"] == 0.0 and stats["approx_kl"] == 0.0   # on policy
    assert (logprobs.grad[mask == 0] == 0).all()                    # a user's turn gets no gradient


def test_the_config_offers_exactly_the_registry():
    field = {f.name: f for f in dataclasses.fields(RLConfig)}["algo"]
    assert tuple(field.metadata["choices"]) == tuple(RL_ALGORITHMS)


def test_minibatch_rows_keep_every_field():
    exp = _experience(torch.ones(3, 2))
    mb = exp.rows(torch.tensor([2, 0]))
    assert torch.equal(mb.rewards, exp.rewards[[2, 0]]) and mb.advantages is None
    assert [mb.texts, mb.ended.tolist()] == [["", ""], [True, True]]


def test_reinforce_pp_returns_to_go_skip_holes():
    rewards = torch.tensor([[1.0, 7.0, 2.0, 3.0]])
    mask = torch.tensor([[1.0, 0.0, 1.0, 1.0]])           # the 7 sits in another speaker's turn
    assert reinforce_pp.returns_to_go(rewards, mask).tolist() == [[6.0, 0.0, 5.0, 3.0]]


def test_reinforce_pp_advantages_by_hand():
    # two episodes of two tokens, KL 0: rewards are the scores on the last token; G = [[1, 1], [3, 3]]
    exp = _experience(torch.ones(2, 2))
    exp = dataclasses.replace(exp, logprobs=torch.zeros(2, 2), ref_logprobs=torch.zeros(2, 2),
                              rewards=torch.tensor([[0.0, 1.0], [0.0, 3.0]]))
    adv = reinforce_pp.advantages(exp, 0.5, HP, None).advantages
    # whitened over all four action tokens: mean 2, unbiased std sqrt(4/3)
    s = math.sqrt(4 / 3)
    torch.testing.assert_close(adv, torch.tensor([[-1 / s, -1 / s], [1 / s, 1 / s]]), rtol=1e-4, atol=1e-4)


def test_whitened_rewards_keep_the_mean_and_scale_the_rest_by_hand():
    from rlhfkit.algorithms.stats import kl_penalised_rewards
    zeros = torch.zeros(2, 2)
    r = kl_penalised_rewards(zeros, zeros, torch.tensor([[0.0, 2.0], [0.0, 4.0]]), torch.ones(2, 2), beta=0.1,
                             whitened=True)
    # raw [[0, 2], [0, 4]]: mean 1.5, unbiased variance 11 / 3
    std = math.sqrt(11 / 3)
    expected = torch.tensor([[-1.5, 0.5], [-1.5, 2.5]]) / std + 1.5
    torch.testing.assert_close(r, expected, rtol=1e-5, atol=1e-5)


def test_rl_lr_warms_up_then_decays_linearly():
    from rlhfkit.train.rl import rl_lr_factor
    assert [rl_lr_factor(s, 2, 10) for s in range(3)] == pytest.approx([0.5, 0.9, 0.8])
    assert [rl_lr_factor(s, 0, 10) for s in (0, 5, 10)] == pytest.approx([1.0, 0.5, 0.0])
