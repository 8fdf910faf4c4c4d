"""Reward-weighted SFT: supervised learning with a reward term, the "constrained optimisation"
reformulation of RLHF.

The KL-constrained objective max_pi E_pi[r] - tau * KL(pi || pi_sft) has the closed-form
solution pi*(y|x) = pi_sft(y|x) exp(r(x, y) / tau) / Z(x) (Peters & Schaal 2007; the same
identity DPO starts from). Projecting pi* onto the model by maximum likelihood, with n samples
y_1..y_n ~ pi_sft per prompt and self-normalised weights, gives the loss rlhfkit minimises,
over one data set holding both the samples and the demonstrations (x, y*):

    L(theta) = - sum_i c_i * log pi_theta(y_i | x_i) / sum_i |y_i|
    c_i      = n * w_j(x)   for the sample y_i = y_j of prompt x   (the reward term)
    c_i      = alpha        for a demonstration                    (the text loss)
    w_j(x)   = exp(r(x, y_j) / tau) / sum_k exp(r(x, y_k) / tau)

log pi summed over the answer's tokens, the sum over a batch divided by its token count (a
per-token mean, as in SFT). tau -> 0 is SFT on the best of n (rejection sampling); tau -> oo is
SFT on the model's own samples; alpha = 0 drops the demonstrations.
"""
from __future__ import annotations

import torch


def sample_weights(scores: torch.Tensor, tau: float) -> torch.Tensor:
    """scores (B, n) rewards of n samples per prompt -> (B, n) weights w_j, each row summing to 1."""
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    return torch.softmax(scores / tau, dim=1)


# the objective as the report prints it
OBJECTIVE = ("L(theta) = - sum_i c_i log pi_theta(y_i | x_i) / sum_i |y_i|, over n samples per prompt from SFT "
             "with c = n softmax_j(r(x, y_j) / tau) and the demonstrations with c = alpha: the maximum-likelihood "
             "projection of pi_sft(y|x) exp(r(x,y)/tau) / Z(x), the solution of max E[r] - tau KL(pi || pi_sft)")
