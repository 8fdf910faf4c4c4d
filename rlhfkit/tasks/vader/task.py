"""The VADER sentiment task behind the task interface (`rlhfkit.tasks.base.Task`).

Ziegler et al. (2019)'s positive continuation on real human ratings: prompts are the opening words
of movie-review sentences, demonstrations the positive sentences cut after their opening, and the
gold judge is VADER's compound score of opening + answer. Every set is the one `rlhfkit data vader
--seed SEED` writes with its other options at their defaults (same split, same order), so a stage
given the task and one given the files see the same data.

The sentences come from the vaderSentiment 3.3.2 sdist: `archive` (a local copy) or the pip
download kept in `cache_dir`, read on first use, not when the task is built. The split sizes are
the ratings' (DataVaderConfig's valid and test shares); TaskConfig's n_* size the synthetic TL;DR
world and are not used here.
"""
from __future__ import annotations

from rlhfkit.config import TaskConfig
from rlhfkit.data.records import Demonstration, Where
from rlhfkit.tasks.vader.config import SPLITS, DataVaderConfig
from rlhfkit.tasks.vader.data import MOVIES, positive_demonstrations, prompt_records, split_sentences
from rlhfkit.tasks.vader.judges import vader_compound
from rlhfkit.tasks.vader.source import Sentence, load_sentences


class VaderTask:
    name = "vader"

    def __init__(self, cfg: TaskConfig, archive: str = "", cache_dir: str = DataVaderConfig.cache_dir) -> None:
        self.data = DataVaderConfig(archive=archive, cache_dir=cache_dir, seed=cfg.seed)
        self._movies: dict[str, list[Sentence]] | None = None

    def movies(self, split: str) -> list[Sentence]:
        """The movie-review sentences of `split`; the ratings are read once, on first use."""
        if split not in SPLITS:
            raise ValueError(f"vader: unknown split {split!r}; expected one of {SPLITS}")
        if self._movies is None:
            sentences, _ = load_sentences(self.data.archive, self.data.cache_dir)
            splits = split_sentences(sentences, self.data.valid_frac, self.data.test_frac, self.data.seed)
            self._movies = {s: [x for x in splits[s] if x.corpus == MOVIES] for s in SPLITS}
        return self._movies[split]

    def prompts(self, split: str) -> list[str]:
        return [r["prompt"] for r in prompt_records(self.movies(split), self.data.prompt_words)]

    def demonstrations(self, split: str) -> list[Demonstration]:
        """The sentences rated at least positive_min, cut after their opening (SFT on positive sentences)."""
        records = positive_demonstrations(self.movies(split), self.data.prompt_words, self.data.positive_min)
        return [Demonstration(r["prompt"], r["completion"], Where(f"vader {split} positive sentence", i))
                for i, r in enumerate(records, start=1)]

    def labelers(self) -> tuple:
        # the comparisons are people's ratings of fixed sentences: nobody can be asked about a new answer
        return ()

    def gold(self, prompts: list[str], answers: list[str]) -> list[float]:
        """VADER's compound score of each opening + answer, in [-1, 1] (evaluation only)."""
        return vader_compound([p + a for p, a in zip(prompts, answers, strict=True)])

    def environment(self) -> None:
        return None     # one continuation per opening
