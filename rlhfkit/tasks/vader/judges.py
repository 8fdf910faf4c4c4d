"""The sentiment task's gold judge: VADER's rule-based scorer, which its training never sees.

VADER (Hutto & Gilbert 2014; the `vaderSentiment` package) takes its lexicon from separate human
ratings of single words, so it is independent of the comparisons the reward model learns from.
Its compound score lies in [-1, 1]. It is also the lexicon-only baseline on held-out human pairs
(beside "longer wins"): a reward model has to beat both to have learned anything of its own.
The model-based judge of the same experiment (perplexity under the start model) runs a model, so
it lives in `rlhfkit.evaluate.fluency`.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import cache


@cache
def _analyzer():
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError as e:
        raise ImportError("the VADER judge needs the vaderSentiment package: "
                          "pip install 'rlhfkit[smollm2]' (or vaderSentiment==3.3.2)") from e
    return SentimentIntensityAnalyzer()


def vader_compound(texts: Sequence[str]) -> list[float]:
    """VADER's compound sentiment of each text, in [-1, 1]."""
    analyzer = _analyzer()
    return [analyzer.polarity_scores(t)["compound"] for t in texts]
