"""The supervised fine-tuning loss: next-token cross-entropy on response tokens only.

Prompt and padding positions carry the label -100 and are left out; the mean is over the
response tokens of the whole batch, so long and short responses weigh per token. Optional
per-sequence weights scale each sequence's summed loss (reward-weighted SFT).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def sft_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, dict[str, float]]:
    """logits (B, T, V) predict the token after each position; labels (B, T), -100 = ignored;
    weights (B,) or None: sum_i weights_i * nll_i / number of response tokens."""
    pred = logits[:, :-1].float()            # (B, T-1, V) position t predicts token t+1
    target = labels[:, 1:]                   # (B, T-1)
    n_tokens = (target != IGNORE).sum()
    if n_tokens == 0:
        raise ValueError("sft_loss: no response tokens in the batch (every label is -100)")
    nll = F.cross_entropy(pred.transpose(1, 2), target, ignore_index=IGNORE, reduction="none")  # (B, T-1)
    if weights is not None:
        nll = nll * weights.to(nll.dtype).unsqueeze(1)
    loss = nll.sum() / n_tokens
    return loss, {"loss": loss.item(), "answer_tokens": int(n_tokens)}
