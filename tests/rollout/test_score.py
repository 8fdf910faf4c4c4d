import torch

from rlhfkit.rollout.score import with_final_eos
from rlhfkit.rollout.types import Rollout

EOS, PAD = 2, 0


def test_eos_is_appended_only_to_answers_that_were_cut_off():
    # row 0 ended with EOS after 2 tokens; row 1 used the whole limit of 3 without one
    r = Rollout(prompt_ids=torch.tensor([[0, 5, 6], [7, 8, 9]]), prompt_mask=torch.tensor([[0, 1, 1], [1, 1, 1]]),
                response_ids=torch.tensor([[11, EOS, PAD], [12, 13, 14]]),
                response_mask=torch.tensor([[1, 1, 0], [1, 1, 1]]),
                logprobs=torch.zeros(2, 3), texts=["a", "bcd"], ended=torch.tensor([True, False]))
    ids, attn = with_final_eos(r, EOS, PAD)
    assert ids.tolist() == [[0, 5, 6, 11, EOS, PAD, PAD], [7, 8, 9, 12, 13, 14, EOS]]
    assert attn.tolist() == [[0, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]]
