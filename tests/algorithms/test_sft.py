import math

import pytest
import torch

from rlhfkit.algorithms.sft import sft_loss


def test_sft_loss_on_a_hand_worked_example():
    # vocab 2; position 0 predicts token 1 (label 1), position 1 predicts token 2 (label 0).
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, 5.0]]])   # (1, 3, 2)
    labels = torch.tensor([[-100, 1, 0]])
    loss, stats = sft_loss(logits, labels)
    # p(1 | pos 0) = 1/2; p(0 | pos 1) = 3/4  -> mean NLL = (log 2 + log 4/3) / 2
    assert loss.item() == pytest.approx((math.log(2) + math.log(4 / 3)) / 2)
    assert stats["answer_tokens"] == 2


def test_prompt_positions_do_not_move_the_loss():
    torch.manual_seed(0)
    logits = torch.randn(1, 5, 7, requires_grad=True)
    labels = torch.tensor([[-100, -100, 3, 4, 1]])
    loss, _ = sft_loss(logits, labels)
    loss.backward()
    # position t predicts label t+1: positions 0 (predicts a masked label) and 4 (nothing after) get no gradient
    assert logits.grad[0, 0].abs().sum() == 0 and logits.grad[0, 4].abs().sum() == 0
    assert logits.grad[0, 1:4].abs().sum() > 0


def test_a_batch_with_no_response_tokens_is_an_error():
    with pytest.raises(ValueError, match="no response tokens"):
        sft_loss(torch.zeros(1, 3, 2), torch.full((1, 3), -100))
