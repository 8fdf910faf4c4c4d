"""How well one rater's scores reproduce a comparison label, and a length-only baseline.

For a pair (a more positive than b by the mean), take one score r_a of a and one score r_b of b
and ask whether r_a vs r_b orders the pair like the label the *other* raters give: the sign of
(mean of a without r_a) - (mean of b without r_b). Agreement 1, disagreement 0, and 1/2 when
r_a == r_b or when the others' means tie (a coin flip against the label). Averaged over all
(r_a, r_b) and then over pairs, it is the accuracy a single human labeler would reach on these
pairs: the ceiling a reward model can be held against. The raters are anonymous and differ by
sentence, so r_a and r_b come from two people; the number is that of a labeler who rates each
sentence on its own scale and compares the scores.

Without leave-one-out the label includes the rater's own score, which flatters agreement.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CHUNK = 256   # pairs per batch: (CHUNK, A, B) float arrays stay ~20 MB at 100 raters a sentence


def _padded(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(P, W) scores right-padded with 0, and (P, W) the mask of real ones."""
    width = max(len(r) for r in rows)
    values, mask = np.zeros((len(rows), width)), np.zeros((len(rows), width), dtype=bool)
    for i, r in enumerate(rows):
        values[i, :len(r)], mask[i, :len(r)] = r, True
    return values, mask


def _reference(values: np.ndarray, mask: np.ndarray, leave_one_out: bool) -> np.ndarray:
    """(P, W) the mean each score is held against: of the other scores, or of all of them."""
    total, n = (values * mask).sum(1, keepdims=True), mask.sum(1, keepdims=True)   # (P, 1)
    if leave_one_out:
        return (total - values) / np.maximum(n - 1, 1)
    return np.broadcast_to(total / n, values.shape)


def pair_agreement(better: Sequence[Sequence[int]], worse: Sequence[Sequence[int]],
                   leave_one_out: bool = True) -> np.ndarray:
    """(P,) per pair, the chance that one score of each side orders the pair like the others' means.
    better[i] and worse[i] are the scores of pair i's two sentences (each >= 2 with leave_one_out)."""
    if leave_one_out and any(len(r) < 2 for r in (*better, *worse)):
        raise ValueError("leave-one-out agreement needs at least 2 scores per sentence")
    out = []
    for start in range(0, len(better), CHUNK):
        a, ma = _padded(better[start:start + CHUNK])   # (P, A)
        b, mb = _padded(worse[start:start + CHUNK])    # (P, B)
        label = np.sign(_reference(a, ma, leave_one_out)[:, :, None] - _reference(b, mb, leave_one_out)[:, None, :])
        vote = np.sign(a[:, :, None] - b[:, None, :])  # (P, A, B)
        agree = 0.5 * (1 + label * vote)               # 1 agree, 0 disagree, 1/2 for a tie on either side
        weight = ma[:, :, None] & mb[:, None, :]
        out.append((agree * weight).sum((1, 2)) / weight.sum((1, 2)))
    return np.concatenate(out) if out else np.zeros(0)


def longer_wins(better: Sequence[str], worse: Sequence[str]) -> float:
    """Accuracy of "the longer text (in characters) is the more positive", ties 1/2."""
    if not better:
        return float("nan")
    return float(np.mean([1.0 if len(a) > len(b) else 0.5 if len(a) == len(b) else 0.0
                          for a, b in zip(better, worse)]))
