import math

import pytest
import torch

from rlhfkit.algorithms import ppo
from rlhfkit.algorithms.kl_control import KLController
from rlhfkit.algorithms.stats import kl_k1, kl_k3, whiten


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_per_token_kl_penalty_with_the_score_on_the_last_real_token():
    r = ppo.rewards(t([-1.0, -2.0, -3.0]), t([-1.5, -2.0, -2.0]), torch.tensor([2.0]), t([1, 1, 0]), beta=0.1)
    # kl = [0.5, 0, -1] masked to [0.5, 0, 0]; -0.1 * kl, plus the score 2 at index 1
    assert r[0].tolist() == pytest.approx([-0.05, 2.0, 0.0])


def test_gae_by_hand():
    adv, ret = ppo.advantages(t([1.0, 2.0]), t([0.5, 1.0]), t([1, 1]), gamma=1.0, lam=0.5)
    # t=1: delta = 2 - 1 = 1 -> A = 1;  t=0: delta = 1 + 1 - 0.5 = 1.5 -> A = 1.5 + 0.5 * 1 = 2
    assert ret[0].tolist() == pytest.approx([2.5, 2.0])
    # whitened [2, 1]: mean 1.5, unbiased std sqrt(0.5)
    assert adv[0].tolist() == pytest.approx([0.5 / math.sqrt(0.5), -0.5 / math.sqrt(0.5)], rel=1e-4)


def test_gae_stops_at_the_mask():
    _, ret = ppo.advantages(t([1.0, 5.0]), t([0.5, 9.0]), t([1, 0]), gamma=1.0, lam=0.95)
    # the masked step contributes neither reward nor value: A0 = 1 - 0.5 = 0.5, return = 1
    assert ret[0, 0].item() == pytest.approx(1.0) and ret[0, 1].item() == 0.0


def test_whiten():
    x = t([1.0, 2.0, 3.0, 4.0, 100.0])
    w = whiten(x, t([1, 1, 1, 1, 0]))
    std = math.sqrt(5 / 3)
    assert w[0].tolist() == pytest.approx([-1.5 / std, -0.5 / std, 0.5 / std, 1.5 / std, 0.0], rel=1e-5)


def test_clipped_policy_and_value_losses_by_hand():
    one = t([1.0])
    lp, old = t([math.log(1.5)]), t([0.0])
    # positive advantage: the ratio 1.5 is clipped to 1.2 -> -1.2; value 2 vs old 1 clipped to 1.2,
    # returns 0: max(2^2, 1.2^2) / 2 = 2
    loss, stats = ppo.loss(lp, old, one, t([2.0]), t([1.0]), t([0.0]), one, clip=0.2, vf_clip=0.2, vf_coef=0.1)
    assert stats["pg_loss"] == pytest.approx(-1.2) and stats["vf_loss"] == pytest.approx(2.0)
    assert loss.item() == pytest.approx(-1.2 + 0.1 * 2.0)
    assert stats["clipfrac"] == 1.0
    # negative advantage: the pessimistic side is the unclipped 1.5
    _, stats = ppo.loss(lp, old, -one, t([0.0]), t([0.0]), t([0.0]), one)
    assert stats["pg_loss"] == pytest.approx(1.5)


def test_kl_estimators():
    lp = torch.log(t([0.2, 0.5, 0.3]))
    assert kl_k1(lp, lp).abs().sum() == 0 and kl_k3(lp, lp).abs().sum() == 0
    assert (kl_k3(lp, torch.log(t([0.6, 0.3, 0.1]))) >= 0).all()


def test_kl_controller():
    fixed = KLController(0.05)
    assert fixed.update(100.0, 64) == 0.05
    adaptive = KLController(0.05, target=6.0, horizon=1000)
    assert adaptive.update(12.0, 100) == pytest.approx(0.05 * (1 + 0.2 * 100 / 1000))   # error clipped at 0.2
    assert adaptive.update(3.0, 100) == pytest.approx(0.05 * 1.02 * (1 - 0.2 * 0.1))
