"""The VADER sentences as training data: a split by sentence, comparisons, K-way rankings, prompts.

Every comparison and ranking stays inside one corpus (a tweet against a tweet), so what is
compared is sentiment, not genre. All draws are deterministic from the seed.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from rlhfkit.tasks.vader.config import SPLITS
from rlhfkit.tasks.vader.source import Sentence

EPS = 1e-9   # a gap of exactly min_gap counts, whatever the rounding of the means
Pair = tuple[Sentence, Sentence]   # (more positive, less positive)


# ---- Split by sentence --------------------------------------------------------------------
def split_sentences(sentences: Sequence[Sentence], valid_frac: float, test_frac: float,
                    seed: int) -> dict[str, list[Sentence]]:
    """Each corpus's distinct texts shuffled and cut into test, valid and train. Repeats of a text
    (71 in the editorials, some across corpora) follow its first occurrence, so no held-out
    sentence is also a training sentence."""
    home: dict[str, str] = {}   # text -> the corpus it first appears in
    for s in sentences:
        home.setdefault(s.text, s.corpus)
    split_of: dict[str, str] = {}
    for corpus in dict.fromkeys(s.corpus for s in sentences):
        texts = [t for t, c in home.items() if c == corpus]
        random.Random(f"vader-split-{seed}-{corpus}").shuffle(texts)
        n_test, n_valid = round(len(texts) * test_frac), round(len(texts) * valid_frac)
        for i, text in enumerate(texts):
            split_of[text] = "test" if i < n_test else "valid" if i < n_test + n_valid else "train"
    return {split: [s for s in sentences if split_of[s.text] == split] for split in SPLITS}


def _by_corpus(sentences: Sequence[Sentence]) -> dict[str, list[Sentence]]:
    """Each corpus's sentences, one per distinct text (a text against itself says nothing), by
    mean rating, lowest first."""
    groups: dict[str, dict[str, Sentence]] = {}
    for s in sentences:
        groups.setdefault(s.corpus, {}).setdefault(s.text, s)
    return {c: sorted(g.values(), key=lambda s: s.mean) for c, g in groups.items()}


def _below(group: Sequence[Sentence], min_gap: float) -> np.ndarray:
    """(N,) how many sentences of a mean-sorted group rate at least min_gap under each one: a
    prefix of the group."""
    means = np.array([s.mean for s in group])
    return np.searchsorted(means, means - min_gap + EPS, side="right")


def _apportion(n: int, sizes: Sequence[int]) -> list[int]:
    """n split in proportion to sizes, largest remainders rounded up."""
    total = sum(sizes)
    if total == 0:
        return [0] * len(sizes)
    exact = [n * s / total for s in sizes]
    shares = [int(x) for x in exact]
    by_remainder = sorted(range(len(sizes)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in by_remainder[:n - sum(shares)]:
        shares[i] += 1
    return shares


# ---- Comparisons --------------------------------------------------------------------------
def draw_pairs(sentences: Sequence[Sentence], n: int, min_gap: float, rng: np.random.Generator) -> list[Pair]:
    """Up to n distinct (more positive, less positive) pairs of one corpus each, means >= min_gap apart.

    Each corpus gets a share of n in proportion to its sentences, drawn uniformly from its eligible
    pairs: uniform over all pairs would hand most of them to the largest, most polar corpus (the
    count of pairs grows with the square of the sentences)."""
    groups = list(_by_corpus(sentences).values())
    pairs: list[Pair] = []
    for group, share in zip(groups, _apportion(n, [len(g) for g in groups])):
        pairs += _corpus_pairs(group, share, min_gap, rng)
    # a few sentences recur within a corpus with other ratings; a pair of one text twice teaches
    # nothing and the readers refuse it (none is drawn at min_gap 1: the copies differ by < 1)
    pairs = [p for p in pairs if p[0].text != p[1].text]
    return [pairs[i] for i in rng.permutation(len(pairs))]


def _corpus_pairs(group: list[Sentence], n: int, min_gap: float, rng: np.random.Generator) -> list[Pair]:
    # number the eligible pairs: sentence i's block holds its below[i] partners, each a lower index
    below = _below(group, min_gap)
    ends = np.cumsum(below)
    total = int(ends[-1]) if len(ends) else 0
    flat = rng.choice(total, size=min(n, total), replace=False)
    upper = np.searchsorted(ends, flat, side="right")   # the block each drawn number falls in
    lower = flat - (ends[upper] - below[upper])
    return [(group[u], group[lo]) for u, lo in zip(upper.tolist(), lower.tolist())]


def pair_record(pair: Pair) -> dict:
    """A TRL-style comparison with an empty prompt, plus where it came from."""
    better, worse = pair
    return {"prompt": "", "chosen": better.text, "rejected": worse.text, "corpus": better.corpus,
            "chosen_id": better.id, "rejected_id": worse.id,
            "chosen_mean": better.mean, "rejected_mean": worse.mean}


# ---- K-way rankings -------------------------------------------------------------------------
def draw_rankings(sentences: Sequence[Sentence], n: int, k: int, min_gap: float,
                  rng: np.random.Generator) -> list[list[Sentence]]:
    """Up to n distinct rankings of k sentences of one corpus, best first, neighbours >= min_gap apart;
    corpora share n in proportion to their sentences, as in draw_pairs."""
    groups = list(_by_corpus(sentences).values())
    rankings: list[list[Sentence]] = []
    for group, share in zip(groups, _apportion(n, [len(g) for g in groups])):
        rankings += _corpus_rankings(group, share, k, min_gap, rng)
    return [rankings[i] for i in rng.permutation(len(rankings))]


def _chain_depth(below: np.ndarray) -> np.ndarray:
    """(N,) the most sentences a ranking starting at each one can hold. Taking the highest sentence
    far enough below is best, and the depth never falls as the mean rises (so >= d is a suffix)."""
    depth = np.ones(len(below), dtype=np.int64)
    for i, b in enumerate(below.tolist()):
        if b > 0:
            depth[i] = depth[b - 1] + 1
    return depth


def _corpus_rankings(group: list[Sentence], n: int, k: int, min_gap: float,
                     rng: np.random.Generator) -> list[list[Sentence]]:
    below = _below(group, min_gap)
    depth = _chain_depth(below)
    if n == 0 or depth.max(initial=0) < k:
        return []
    seen: set[tuple[str, ...]] = set()
    rankings = []
    for _ in range(10 * n):   # repeats are dropped; a small corpus may hold fewer than n rankings
        chain, top = [], len(group)
        # walk down: each step draws among the sentences far enough below the last one that can
        # still start a chain long enough for the rest
        for need in range(k, 0, -1):
            i = int(rng.integers(int(np.searchsorted(depth, need)), top))
            chain.append(group[i])
            top = int(below[i])
        key = tuple(s.id for s in chain)
        if key not in seen:
            seen.add(key)
            rankings.append(chain)
            if len(rankings) == n:
                break
    return rankings


def ranking_record(ranking: Sequence[Sentence]) -> dict:
    """The ranked-list format `rlhfkit rm` reads (best first), with an empty prompt, plus provenance."""
    return {"prompt": "", "completions": [s.text for s in ranking], "corpus": ranking[0].corpus,
            "ids": [s.id for s in ranking], "means": [s.mean for s in ranking]}


# ---- Prompts and demonstrations ---------------------------------------------------------
MOVIES = "movieReviewSnippets"   # the corpus whose openings are the prompts (Ziegler et al. 2019's task)


def opening(text: str, n_words: int) -> tuple[str, str] | None:
    """(first n_words words, the rest), or None when the rest would be under 4 words."""
    words = text.split()
    if len(words) < n_words + 4:
        return None
    return " ".join(words[:n_words]), " ".join(words[n_words:])


def prompt_records(sentences: Sequence[Sentence], n_words: int) -> list[dict]:
    """{"prompt", "id"} per distinct opening: two answers to one prompt would be one prompt in eval."""
    out: dict[str, dict] = {}
    for s in sentences:
        cut = opening(s.text, n_words)
        if cut is not None and cut[0] not in out:
            out[cut[0]] = {"prompt": cut[0], "id": s.id}
    return list(out.values())


def positive_demonstrations(sentences: Sequence[Sentence], n_words: int, positive_min: float) -> list[dict]:
    """{"prompt", "completion"} from the sentences rated >= positive_min: the SFT-on-positive baseline."""
    out = []
    for s in sentences:
        cut = opening(s.text, n_words)
        if cut is not None and s.mean >= positive_min:
            out.append({"prompt": cut[0], "completion": " " + cut[1], "id": s.id, "mean": s.mean})
    return out
