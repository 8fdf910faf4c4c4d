import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from rlhfkit.algorithms import grpo, rloo
from rlhfkit.algorithms.stats import clipped_surrogate
from rlhfkit.config import GRPOOptions
from rlhfkit.algorithms.reward import pairwise_loss, ranking_loss


def test_rloo_leave_one_out_baseline():
    scores = torch.tensor([1.0, 2.0, 3.0, 4.0, 4.0, 4.0])
    zeros = torch.zeros(6, 2)
    adv = rloo.leave_one_out(scores, zeros, zeros, torch.ones(6, 2), k=3, beta=0.1)
    # group 1: baselines (2+3)/2, (1+3)/2, (1+2)/2 -> [-1.5, 0, 1.5]; group 2 all equal -> 0
    assert adv[:, 0].tolist() == pytest.approx([-1.5, 0.0, 1.5, 0.0, 0.0, 0.0])


def test_rloo_puts_the_kl_in_the_reward():
    scores = torch.tensor([1.0, 1.0])
    lp = torch.tensor([[0.0], [0.0]])
    ref = torch.tensor([[-2.0], [0.0]])      # sample 0 has KL 2
    adv = rloo.leave_one_out(scores, lp, ref, torch.ones(2, 1), k=2, beta=0.5)
    assert adv[:, 0].tolist() == pytest.approx([-1.0, 1.0])


def test_grpo_group_normalised_advantages():
    adv = grpo.group_normalised(torch.tensor([1.0, 2.0, 3.0]), torch.ones(3, 1), k=3)
    assert adv[:, 0].tolist() == pytest.approx([-1.0, 0.0, 1.0], abs=1e-3)


def test_grpo_loss_at_the_reference_is_minus_the_advantage():
    lp = torch.log(torch.tensor([[0.5, 0.25], [0.5, 0.5]]))
    adv = torch.tensor([[1.0, 1.0], [-2.0, -2.0]])
    loss, stats = grpo.clipped_loss(lp, lp, lp, adv, torch.ones(2, 2), beta=0.1)
    assert stats["kl_k3"] == 0.0 and loss.item() == pytest.approx(0.5)   # mean of -1 and +2


def test_dr_grpo_advantages_are_not_divided_by_the_group_std():
    scores = torch.tensor([0.0, 4.0, 1.0, 1.0])
    assert grpo.group_normalised(scores, torch.ones(4, 1), k=2, scale=False)[:, 0].tolist() == [-2.0, 2.0, 0.0, 0.0]
    scaled = grpo.group_normalised(scores, torch.ones(4, 1), k=2)[:, 0]      # std of (0, 4) is 2 sqrt 2
    assert scaled.tolist() == pytest.approx([-2 / (8 ** 0.5 + 1e-4), 2 / (8 ** 0.5 + 1e-4), 0.0, 0.0])


def test_loss_aggregations_by_hand():
    per_token = torch.tensor([[1.0, 3.0], [6.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])          # answers of 2 and 1 tokens
    assert grpo.aggregate(per_token, mask, "seq_mean_token_mean").item() == pytest.approx((2 + 6) / 2)
    assert grpo.aggregate(per_token, mask, "token_mean").item() == pytest.approx((1 + 3 + 6) / 3)
    assert grpo.aggregate(per_token, mask, "seq_mean_token_sum_norm").item() == pytest.approx((4 / 2 + 6 / 2) / 2)
    assert grpo.aggregate(per_token, mask, "seq_mean_token_sum_norm", 4).item() == pytest.approx((4 / 4 + 6 / 4) / 2)
    exp = SimpleNamespace(action_mask=mask)
    assert grpo.units(exp, own=GRPOOptions(loss_agg="token_mean")) == 3.0 and grpo.units(exp, own=GRPOOptions()) == 2.0


def test_clip_higher_widens_only_the_upper_bound():
    old = torch.zeros(2, 1)
    logp = torch.log(torch.tensor([[1.25], [0.7]]))
    adv, mask = torch.tensor([[1.0], [-1.0]]), torch.ones(2, 1)
    sym, _ = clipped_surrogate(logp, old, adv, mask, 0.2)
    high, stats = clipped_surrogate(logp, old, adv, mask, 0.2, clip_high=0.28)
    # ratio 1.25, A = 1: clipped to 1.2 symmetrically, not under 1.28; ratio 0.7, A = -1: held at 0.8 either way
    assert sym[:, 0].tolist() == pytest.approx([-1.2, 0.8]) and high[:, 0].tolist() == pytest.approx([-1.25, 0.8])
    assert stats["clipfrac"] == 0.5


def test_gspo_takes_one_ratio_per_answer():
    old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[2.0, 0.5, 7.0]])).requires_grad_()
    mask = torch.tensor([[1.0, 1.0, 0.0]])                 # the third column is padding
    adv = torch.ones(1, 3)
    token, _ = clipped_surrogate(logp, old, adv, mask, 0.2)
    assert token[0, :2].tolist() == pytest.approx([-1.2, -0.5])   # 2 clipped to 1.2; 0.5 kept (the min)
    seq, _ = clipped_surrogate(logp, old, adv, mask, 0.2, level="sequence")
    assert seq[0, :2].tolist() == pytest.approx([-1.0, -1.0])     # exp(mean(log 2, log 0.5)) = 1
    loss, _ = grpo.clipped_loss(logp, old, logp.detach(), adv, mask, beta=0.0,
                                own=GRPOOptions(importance_level="sequence"))
    loss.backward()
    # d(-s)/d logp_t = -s / |y| on each action token, nothing on padding
    assert logp.grad[0].tolist() == pytest.approx([-0.5, -0.5, 0.0])


def test_rloo_and_grpo_need_k_of_two():
    with pytest.raises(ValueError):
        rloo.leave_one_out(torch.zeros(2), torch.zeros(2, 1), torch.zeros(2, 1), torch.ones(2, 1), k=1, beta=0.0)
    with pytest.raises(ValueError):
        grpo.group_normalised(torch.zeros(2), torch.ones(2, 1), k=1)


def test_bradley_terry_at_a_zero_margin_is_log_2():
    loss, stats = pairwise_loss(torch.zeros(4), torch.zeros(4))
    assert loss.item() == pytest.approx(math.log(2)) and stats["accuracy"] == 0.0


def test_k_way_ranking_by_hand():
    loss, _ = ranking_loss(torch.tensor([3.0, 2.0, 1.0]), [3])
    expected = (2 * F.softplus(torch.tensor(-1.0)) + F.softplus(torch.tensor(-2.0))) / 3
    assert loss.item() == pytest.approx(expected.item())


def test_each_prompt_counts_once_whatever_its_k():
    r = torch.tensor([1.0, 0.0, 3.0, 2.0, 1.0, 0.0])   # a pair, then a 4-way ranking
    loss, _ = ranking_loss(r, [2, 4])
    pair = F.softplus(torch.tensor(-1.0))
    four = sum(F.softplus(torch.tensor(-(r[2 + i] - r[2 + j]).item())) for i in range(4) for j in range(i + 1, 4)) / 6
    assert loss.item() == pytest.approx(((pair + four) / 2).item())


def test_ranking_loss_gradient_pushes_the_better_answer_up():
    r = torch.zeros(2, requires_grad=True)
    ranking_loss(r, [2])[0].backward()
    assert r.grad[0] < 0 < r.grad[1]


def test_centring_term_by_hand_and_only_moves_each_prompts_mean():
    r = torch.tensor([1.0, 0.0, 3.0, 2.0, 1.0, 0.0], requires_grad=True)   # prompt means 0.5 and 1.5
    plain, _ = ranking_loss(r, [2, 4])
    centred, stats = ranking_loss(r, [2, 4], center=0.5)
    assert centred.item() == pytest.approx(plain.item() + 0.5 * (0.5 ** 2 + 1.5 ** 2) / 2)
    assert stats["prompt_mean_sq"] == pytest.approx((0.5 ** 2 + 1.5 ** 2) / 2)
    # the centring gradient is the same for every answer of a prompt: it shifts, never reorders
    (centred - plain).backward()
    assert torch.allclose(r.grad[:2], torch.full((2,), 0.5 * 2 * 0.5 / 2 / 2))
    assert torch.allclose(r.grad[2:], torch.full((4,), 0.5 * 2 * 1.5 / 2 / 4))


# ---- masks with holes: only action tokens carry KL, advantages and loss -----------------------------
HOLED = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])     # row 0: action, a user's token, action


def test_rloo_with_holes_sums_kl_over_action_tokens_only():
    lp = torch.zeros(2, 3)
    ref = torch.tensor([[-1.0, -9.0, -1.0], [0.0, 0.0, -9.0]])   # the -9s sit in holes and padding
    adv = rloo.leave_one_out(torch.tensor([0.0, 0.0]), lp, ref, HOLED, k=2, beta=1.0)
    # sequence KL: row 0 = 1 + 1 = 2, row 1 = 0; R = [-2, 0]; leave-one-out: [-2 - 0, 0 - (-2)]
    torch.testing.assert_close(adv, torch.tensor([[-2.0, 0.0, -2.0], [2.0, 2.0, 0.0]]))


def test_grpo_with_holes_averages_each_sequence_over_its_action_tokens():
    adv = grpo.group_normalised(torch.tensor([0.0, 1.0]), HOLED, k=2)
    assert adv[0, 1].item() == 0.0 and adv[1, 2].item() == 0.0          # nothing off the action tokens
    lp = torch.zeros(2, 3)
    ref = torch.tensor([[0.0, -5.0, 0.0], [0.0, 0.0, 0.0]])            # a KL only inside row 0's hole
    big = torch.tensor([[1.0, 100.0, 1.0], [-1.0, -1.0, 100.0]])
    loss, stats = grpo.clipped_loss(lp, lp, ref, big, HOLED, beta=1.0)
    # the hole and the padding hold 100s and a KL, yet only action tokens count: mean(-1, +1) = 0
    assert loss.item() == pytest.approx(0.0) and stats["kl_k3"] == 0.0
