"""The supervised family's losses against values worked out by hand."""
import math

import pytest
import torch
import torch.nn.functional as F

from rlhfkit.algorithms import best_of_n, dpo, rwsft, slic
from rlhfkit.algorithms.reward import group_pairs
from rlhfkit.algorithms.sft import sft_loss


def test_dpo_loss_is_log2_when_policy_equals_reference():
    lp = torch.tensor([-12.0, -30.5, -7.25])
    loss, stats = dpo.loss(lp, lp - 3.0, lp, lp - 3.0, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2))
    assert stats["margin"] == 0.0


def test_dpo_loss_by_hand():
    # h = (-10 - -12) - (-15 - -14) = 2 - (-1) = 3; beta 0.5 -> -log sigmoid(1.5)
    loss, stats = dpo.loss(torch.tensor([-10.0]), torch.tensor([-15.0]), torch.tensor([-12.0]),
                           torch.tensor([-14.0]), beta=0.5)
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-1.5))))
    assert stats["reward_chosen"] == pytest.approx(1.0) and stats["reward_rejected"] == pytest.approx(-0.5)
    assert stats["accuracy"] == 1.0


def test_ipo_loss_by_hand_and_its_minimum():
    # h = 3, beta 0.25 -> target 1/(2*0.25) = 2 -> (3 - 2)^2 = 1
    args = (torch.tensor([-10.0]), torch.tensor([-15.0]), torch.tensor([-12.0]), torch.tensor([-14.0]))
    assert dpo.loss(*args, beta=0.25, kind="ipo")[0].item() == pytest.approx(1.0)
    # the loss is 0 exactly at the target margin: DPO keeps pushing, IPO stops
    at_target = dpo.loss(torch.tensor([0.0]), torch.tensor([-2.0]), torch.tensor([0.0]), torch.tensor([0.0]),
                         beta=0.25, kind="ipo")[0]
    assert at_target.item() == pytest.approx(0.0)


def test_preference_losses_weight_pairs():
    c, r = torch.tensor([-1.0, -1.0]), torch.tensor([-1.0, -5.0])
    zero = torch.zeros(2)
    per = -F.logsigmoid(torch.tensor([0.0, 4.0]))
    loss = dpo.loss(c, r, zero, zero, beta=1.0, weights=torch.tensor([3.0, 1.0]))[0]
    assert loss.item() == pytest.approx(((3 * per[0] + per[1]) / 4).item())
    with pytest.raises(ValueError, match="unknown preference loss"):
        dpo.loss(c, r, zero, zero, beta=1.0, kind="kto")


def test_slic_hinge_and_regulariser_by_hand():
    # margins 0.5 and 3 with delta 1: hinge 0.5 and 0; reg nll 2 and 4, lambda 0.1
    loss, stats = slic.loss(torch.tensor([-4.0, -2.0]), torch.tensor([-4.5, -5.0]), torch.tensor([2.0, 4.0]),
                            delta=1.0, reg_weight=0.1)
    assert loss.item() == pytest.approx(((0.5 + 0.2) + (0.0 + 0.4)) / 2)
    assert stats["hinge"] == pytest.approx(0.25) and stats["accuracy"] == 1.0


def test_best_of_n_selection_and_analytic_kl():
    scores = torch.tensor([[0.1, 0.9, 0.3], [2.0, 2.0, -1.0]])
    assert best_of_n.select(scores).tolist() == [1, 0]          # ties: the first
    assert best_of_n.analytic_kl(1) == 0.0
    assert best_of_n.analytic_kl(8) == pytest.approx(math.log(8) - 7 / 8)   # 1.204 (Stiennon et al.: 1.2)
    assert best_of_n.analytic_kl(64) == pytest.approx(3.175, abs=1e-3)


def test_reward_weights_are_a_softmax_over_a_prompts_samples():
    w = rwsft.sample_weights(torch.tensor([[0.0, math.log(3.0)], [1.0, 1.0]]), tau=1.0)
    assert w.tolist() == [pytest.approx([0.25, 0.75]), pytest.approx([0.5, 0.5])]
    # tau -> 0 is rejection sampling: all weight on the best
    assert rwsft.sample_weights(torch.tensor([[0.0, 0.2, 0.1]]), tau=1e-4)[0].tolist() == pytest.approx([0, 1, 0])


def test_weighted_sft_loss_by_hand():
    # two one-token answers with uniform logits over 4 tokens: nll log 4 each; weights 3 and 1
    logits = torch.zeros(2, 2, 4)
    labels = torch.tensor([[-100, 1], [-100, 2]])
    loss = sft_loss(logits, labels, torch.tensor([3.0, 1.0]))[0]
    assert loss.item() == pytest.approx((3 + 1) * math.log(4) / 2)
    assert sft_loss(logits, labels, torch.ones(2))[0].item() == pytest.approx(sft_loss(logits, labels)[0].item())


def test_group_pairs_weigh_each_prompt_once():
    chosen, rejected, weights = group_pairs([3, 2])
    assert list(zip(chosen, rejected)) == [(0, 1), (0, 2), (1, 2), (3, 4)]
    assert weights == pytest.approx([1 / 3] * 3 + [1.0])
