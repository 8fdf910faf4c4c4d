"""`rlhfkit data vader`: real human preferences from the VADER sentiment ratings.

The data: Hutto & Gilbert (2014), "VADER: A Parsimonious Rule-based Model for Sentiment Analysis
of Social Media Text", ICWSM-14. 23,703 sentences of four corpora (movie-review snippets, tweets,
New York Times editorial snippets, Amazon review snippets), each scored -4..4 by 15 to 99 people.
They ship in the vaderSentiment 3.3.2 source distribution on PyPI; this command downloads it with
pip (kept in --cache_dir) or reads a local copy given as --archive.

The preference is "more positive": a comparison is two sentences of one corpus whose mean ratings
differ by at least --min_gap, the higher one chosen. The sentences are split first, so the valid and
test comparisons only hold sentences never seen in training. Files written into --out:
- sentences_{train,valid,test}.jsonl   {"id", "corpus", "text", "mean", "ratings"}
- comparisons_{train,valid,test}.jsonl {"prompt": "", "chosen", "rejected"} + ids, means, corpus
- rankings_{train,valid,test}.jsonl    {"prompt": "", "completions": [best, ..., worst]} + ids, means, corpus
- prompts_{train,valid,test}.jsonl     {"prompt", "id"}: the opening words of movie-review sentences
- sft_{train,valid}.jsonl              {"prompt", "completion"}: positive movie-review sentences, cut
                                       after the opening (the "SFT on positive sentences" baseline)
- stats.json                           counts; the raters' own agreement and a length baseline on the
                                       test comparisons (see agreement.py)

    rlhfkit data vader --out runs/vader-data
    rlhfkit data vader --archive vaderSentiment-3.3.2.tar.gz --out runs/vader-data   # offline
    rlhfkit rm --model runs/sft --data runs/vader-data/comparisons_train.jsonl \
        --valid_data runs/vader-data/comparisons_valid.jsonl --out runs/vader-rm
"""
from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from rlhfkit.config import to_dict
from rlhfkit.data.records import write_jsonl
from rlhfkit.tasks.vader.agreement import longer_wins, pair_agreement
from rlhfkit.tasks.vader.config import SPLITS, DataVaderConfig
from rlhfkit.tasks.vader.data import (MOVIES, Pair, draw_pairs, draw_rankings, pair_record, positive_demonstrations,
                                      prompt_records, ranking_record, split_sentences)
from rlhfkit.tasks.vader.source import Sentence, load_sentences


def heldout_statistics(pairs: list[Pair]) -> dict:
    """Rater agreement (leave-one-out, and with the rater's own score in the label) and the
    longer-wins accuracy on the held-out comparisons; None where there are none."""
    better, worse = [p[0] for p in pairs], [p[1] for p in pairs]
    if not pairs:
        return {"n": 0, "rater_agreement_leave_one_out": None, "rater_agreement_all_raters": None,
                "longer_wins": None}
    return {"n": len(pairs),
            "rater_agreement_leave_one_out": float(pair_agreement([s.ratings for s in better],
                                                                  [s.ratings for s in worse]).mean()),
            "rater_agreement_all_raters": float(pair_agreement([s.ratings for s in better],
                                                               [s.ratings for s in worse], False).mean()),
            "longer_wins": longer_wins([s.text for s in better], [s.text for s in worse])}


def _summary(stats: dict, out: Path) -> str:
    slash = lambda d: "/".join(f"{d[s]:,}" for s in SPLITS)  # noqa: E731
    test = stats["test_comparisons"]
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    return (f"vader: {stats['sentences']['total']:,} sentences, train/valid/test: sentences "
            f"{slash(stats['sentences']['by_split'])}, comparisons {slash(stats['comparisons'])}, rankings "
            f"{slash(stats['rankings'])}, prompts {slash(stats['prompts'])}, sft {stats['sft']['train']:,}; "
            f"test comparisons: a rater agrees {fmt(test['rater_agreement_leave_one_out'])} (leave-one-out; "
            f"{fmt(test['rater_agreement_all_raters'])} with their own score), longer wins "
            f"{fmt(test['longer_wins'])}; {stats['seconds']:.1f}s -> {out}")


def run(cfg: DataVaderConfig) -> dict:
    cfg.validate()
    started, out = time.perf_counter(), Path(cfg.out)
    # ---- 1. Read and check the ratings
    sentences, source = load_sentences(cfg.archive, cfg.cache_dir)
    # ---- 2. Split by sentence
    splits = split_sentences(sentences, cfg.valid_frac, cfg.test_frac, cfg.seed)
    # ---- 3. Comparisons and rankings inside each split; one generator per split and kind, so
    # changing one count leaves the other draws as they were
    pairs: dict[str, list[Pair]] = {}
    rankings: dict[str, list[list[Sentence]]] = {}
    for i, split in enumerate(SPLITS):
        pairs[split] = draw_pairs(splits[split], cfg.count("pairs", split), cfg.min_gap,
                                  np.random.default_rng([cfg.seed, i, 0]))
        rankings[split] = draw_rankings(splits[split], cfg.count("rankings", split), cfg.k, cfg.min_gap,
                                        np.random.default_rng([cfg.seed, i, 1]))
    # ---- 4. Prompts and positive demonstrations, from the movie reviews
    movies = {split: [s for s in splits[split] if s.corpus == MOVIES] for split in SPLITS}
    prompts = {split: prompt_records(movies[split], cfg.prompt_words) for split in SPLITS}
    sft = {split: positive_demonstrations(movies[split], cfg.prompt_words, cfg.positive_min)
           for split in ("train", "valid")}
    # ---- 5. Write
    for split in SPLITS:
        write_jsonl(out / f"sentences_{split}.jsonl", [s.record() for s in splits[split]])
        write_jsonl(out / f"comparisons_{split}.jsonl", [pair_record(p) for p in pairs[split]])
        write_jsonl(out / f"rankings_{split}.jsonl", [ranking_record(r) for r in rankings[split]])
        write_jsonl(out / f"prompts_{split}.jsonl", prompts[split])
    for split, records in sft.items():
        write_jsonl(out / f"sft_{split}.jsonl", records)
    # ---- 6. Statistics
    stats = {
        "source": source,
        "sentences": {"total": len(sentences), "distinct_texts": len({s.text for s in sentences}),
                      "by_split": {split: len(splits[split]) for split in SPLITS},
                      "by_corpus": {c: {split: sum(s.corpus == c for s in splits[split]) for split in SPLITS}
                                    for c in dict.fromkeys(s.corpus for s in sentences)},
                      # GroundTruth means that are not the average of the published scores
                      "listed_mean_differs": dict(Counter(s.corpus for s in sentences
                                                          if abs(s.mean - s.listed_mean) > 0.01))},
        "comparisons": {split: len(pairs[split]) for split in SPLITS},
        "comparisons_by_corpus": {split: dict(Counter(p[0].corpus for p in pairs[split])) for split in SPLITS},
        "rankings": {split: len(rankings[split]) for split in SPLITS},
        "prompts": {split: len(prompts[split]) for split in SPLITS},
        "sft": {split: len(records) for split, records in sft.items()},
        "test_comparisons": heldout_statistics(pairs["test"]),
        "config": to_dict(cfg),
    }
    stats["seconds"] = round(time.perf_counter() - started, 2)
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    print(_summary(stats, out))
    return {"out": str(out), "files": sorted(p.name for p in out.glob("*.json*"))}
