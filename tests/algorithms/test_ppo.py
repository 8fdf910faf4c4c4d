import math

import pytest
import torch

from rlhfkit.algorithms import ppo
from rlhfkit.algorithms.kl_control import KLController
from rlhfkit.algorithms.stats import kl_k1, kl_k3, kl_penalised_rewards, whiten


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_per_token_kl_penalty_with_the_score_on_the_last_real_token():
    r = kl_penalised_rewards(t([-1.0, -2.0, -3.0]), t([-1.5, -2.0, -2.0]), t([0.0, 2.0, 0.0]), t([1, 1, 0]), beta=0.1)
    # kl = [0.5, 0, -1] masked to [0.5, 0, 0]; -0.1 * kl, plus the score 2 at index 1
    assert r[0].tolist() == pytest.approx([-0.05, 2.0, 0.0])


def test_gae_by_hand():
    adv, ret = ppo.gae(t([1.0, 2.0]), t([0.5, 1.0]), t([1, 1]), gamma=1.0, lam=0.5)
    # t=1: delta = 2 - 1 = 1 -> A = 1;  t=0: delta = 1 + 1 - 0.5 = 1.5 -> A = 1.5 + 0.5 * 1 = 2
    assert ret[0].tolist() == pytest.approx([2.5, 2.0])
    # whitened [2, 1]: mean 1.5, unbiased std sqrt(0.5)
    assert adv[0].tolist() == pytest.approx([0.5 / math.sqrt(0.5), -0.5 / math.sqrt(0.5)], rel=1e-4)


def test_gae_stops_at_the_mask():
    _, ret = ppo.gae(t([1.0, 5.0]), t([0.5, 9.0]), t([1, 0]), gamma=1.0, lam=0.95)
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
    loss, stats = ppo.clipped_loss(lp, old, one, t([2.0]), t([1.0]), t([0.0]), one, clip=0.2, vf_clip=0.2, vf_coef=0.1)
    assert stats["pg_loss"] == pytest.approx(-1.2) and stats["vf_loss"] == pytest.approx(2.0)
    assert loss.item() == pytest.approx(-1.2 + 0.1 * 2.0)
    assert stats["clipfrac"] == 1.0
    # negative advantage: the pessimistic side is the unclipped 1.5
    _, stats = ppo.clipped_loss(lp, old, -one, t([0.0]), t([0.0]), t([0.0]), one)
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


# ---- masks with holes: a user's turn between two of the policy's ----------------------------------
def test_gae_skips_a_hole_to_the_next_action_token():
    # tokens: a0 a1 [u u] a2 (a user's two tokens between the policy's turns); gamma 1, lambda 0.5
    rewards = t([0.0, 1.0, 7.0, 7.0, 3.0])      # the hole's rewards and values must not count
    values = t([1.0, 2.0, 9.0, 9.0, 4.0])
    mask = t([1, 1, 0, 0, 1])
    _, ret = ppo.gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # a2: delta = 3 + 0 - 4 = -1 -> A = -1
    # a1 bootstraps from V(a2) = 4, not from the hole's 9 nor 0: delta = 1 + 4 - 2 = 3 -> A = 3 + 0.5 * -1 = 2.5
    # a0: delta = 0 + 2 - 1 = 1 -> A = 1 + 0.5 * 2.5 = 2.25
    assert ret[0].tolist() == pytest.approx([2.25 + 1.0, 2.5 + 2.0, 0.0, 0.0, -1.0 + 4.0])


def test_gae_with_a_prefix_mask_is_unchanged_by_what_follows_it():
    rewards, values = t([1.0, 2.0, 5.0]), t([0.5, 1.0, 8.0])
    _, with_tail = ppo.gae(rewards, values, t([1, 1, 0]), gamma=1.0, lam=0.5)
    _, alone = ppo.gae(rewards[:, :2], values[:, :2], t([1, 1]), gamma=1.0, lam=0.5)
    assert with_tail[0, :2].tolist() == pytest.approx(alone[0].tolist()) and with_tail[0, 2].item() == 0.0


def test_kl_reward_with_a_hole_lands_on_action_tokens_and_the_score_on_the_last():
    logp, ref = t([-1.0, -1.0, -1.0, -1.0]), t([-2.0, -3.0, -1.5, -1.5])
    r = kl_penalised_rewards(logp, ref, t([0.0, 0.0, 5.0, 0.0]), t([1, 0, 1, 0]), beta=0.5)
    # kl per token [1, 2, 0.5, 0.5] kept on positions 0 and 2; the score at the last action token (2)
    assert r[0].tolist() == pytest.approx([-0.5, 0.0, -0.25 + 5.0, 0.0])


def test_kl_reward_keeps_turn_rewards_where_the_scorer_placed_them():
    # two turns of the policy (0-1 and 4-5) around a user's turn (2-3): a turn reward of 1 on token 1,
    # the episode's 3 on token 5; a reward on a user's token (9 at 3) never counts
    logp, ref = t([-1.0, -1.0, -1.0, -1.0, -1.0, -1.0]), t([-1.2, -1.0, -4.0, -4.0, -0.8, -1.5])
    r = kl_penalised_rewards(logp, ref, t([0.0, 1.0, 0.0, 9.0, 0.0, 3.0]), t([1, 1, 0, 0, 1, 1]), beta=0.5)
    # kl = [0.2, 0, 3, 3, -0.2, 0.5] -> -0.5 kl on action tokens: [-0.1, 0, -, -, 0.1, -0.25]
    assert r[0].tolist() == pytest.approx([-0.1, 1.0, 0.0, 0.0, 0.1, 3.0 - 0.25])


def test_advantages_are_whitened_over_action_tokens_only():
    adv, _ = ppo.gae(t([0.0, 0.0, 1.0]), t([0.0, 5.0, 0.0]), t([1, 0, 1]), gamma=1.0, lam=1.0)
    # raw A = [1, -, 1]: equal, so whitened to 0 on both; the hole stays 0
    assert adv[0].tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-3)


def _reference_gae(rewards, values, mask, gamma, lam):
    """GAE written out on the list of action positions of each row (for the random test below)."""
    out = torch.zeros_like(rewards)
    for b in range(rewards.size(0)):
        acts = [i for i in range(rewards.size(1)) if mask[b, i] > 0]
        gae = 0.0
        for j in reversed(range(len(acts))):
            i = acts[j]
            nxt = values[b, acts[j + 1]].item() if j + 1 < len(acts) else 0.0
            gae = rewards[b, i].item() + gamma * nxt - values[b, i].item() + gamma * lam * gae
            out[b, i] = gae
    return out + values * mask


@pytest.mark.parametrize("holes", [False, True])
def test_gae_matches_a_reference_on_random_masks(holes):
    g = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(6, 12, generator=g), torch.randn(6, 12, generator=g)
    lengths = torch.randint(1, 13, (6, 1), generator=g)
    mask = (torch.arange(12) < lengths).float()
    if holes:
        mask = mask * (torch.rand(6, 12, generator=g) > 0.3).float()
        mask[:, 0] = 1.0
    _, ret = ppo.gae(rewards, values, mask, gamma=0.9, lam=0.95)
    torch.testing.assert_close(ret, _reference_gae(rewards, values, mask, 0.9, 0.95), atol=1e-5, rtol=0)
