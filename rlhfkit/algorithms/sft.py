"""The supervised fine-tuning loss: next-token cross-entropy on response tokens only.

Prompt and padding positions carry the label -100 and are left out; the mean is over the
response tokens of the whole batch, so long and short responses weigh per token.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """logits (B, T, V) predict the token after each position; labels (B, T), -100 = ignored."""
    pred = logits[:, :-1].float()            # (B, T-1, V) position t predicts token t+1
    target = labels[:, 1:]                   # (B, T-1)
    n_tokens = (target != IGNORE).sum()
    if n_tokens == 0:
        raise ValueError("sft_loss: no response tokens in the batch (every label is -100)")
    loss = F.cross_entropy(pred.reshape(-1, pred.size(-1)), target.reshape(-1), ignore_index=IGNORE,
                           reduction="sum") / n_tokens
    return loss, {"loss": loss.item(), "tokens": int(n_tokens)}
