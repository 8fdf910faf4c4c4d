"""`rlhfkit data vader` on a tiny archive in the original layout; the agreement math on hand-worked pairs.

Never touches the network: every run passes --archive.
"""
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from rlhfkit.data.records import DataError, load_comparisons, load_demonstrations
from rlhfkit.tasks.vader.agreement import longer_wins, pair_agreement
from rlhfkit.tasks.vader.config import DataVaderConfig
from rlhfkit.tasks.vader.data import draw_pairs, draw_rankings, split_sentences
from rlhfkit.tasks.vader.export import run
from rlhfkit.tasks.vader.source import CORPORA, Sentence, load_sentences

MEANS = (-3, -2, -1, 0, 1, 2, 3)   # one sentence per mean and corpus; scores [m-1, m, m, m+1]


# ---- A tiny copy of the data, laid out like the vaderSentiment 3.3.2 sdist --------------------
def corpus_files(corpus: str) -> dict[str, str]:
    truth, ratings = [], []
    for i, m in enumerate(MEANS, start=1):
        truth.append(f"{i}\t{m}\t{corpus} sentence number {i} is the one rated {m} by its raters")
        ratings.append(f"{i}\t{m}\t0.70711\t{[m - 1, m, m, m + 1]}")
    truth.append(f"{len(MEANS) + 1}\t0.0\tToo short to prompt.")   # in every corpus
    ratings.append(f"{len(MEANS) + 1}\t0.0\t0.0\t[0, 0, 0, 0]")
    # as in the originals: CRLF line ends, none after the last line, a BOM on some first lines
    bom = "\ufeff" if corpus == "amazonReviewSnippets" else ""
    return {f"{corpus}_GroundTruth.txt": "\r\n".join(truth),
            f"{corpus}_anonDataRatings.txt": bom + "\r\n".join(ratings)}


def write_folder(folder, edit=None):
    """The eight files in folder; edit(name, lines) may change a file's lines first."""
    folder.mkdir(parents=True)
    for corpus in CORPORA:
        for name, text in corpus_files(corpus).items():
            lines = text.split("\r\n")
            if edit:
                edit(name, lines)
            (folder / name).write_bytes("\r\n".join(lines).encode("utf-8"))
    return folder


def write_sdist(tmp_path, edit=None):
    folder = write_folder(tmp_path / "src" / "hutto_ICWSM_2014", edit)
    inner = tmp_path / "src" / "hutto_ICWSM_2014.tar.gz"
    with tarfile.open(inner, "w:gz") as tar:
        tar.add(folder, arcname="hutto_ICWSM_2014")
    sdist = tmp_path / "vaderSentiment-3.3.2.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(inner, arcname="vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
    return sdist


def rlhfkit(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "rlhfkit.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---- The command, as a user runs it --------------------------------------------------------
def test_data_vader_writes_the_data_sets(tmp_path):
    out = tmp_path / "out"
    proc = rlhfkit("data", "vader", "--archive", write_sdist(tmp_path), "--out", out, "--cache_dir", tmp_path / "cache",
                   "--valid_frac", "0.25", "--test_frac", "0.25", "--n_pairs_train", "8", "--n_rankings_train", "3",
                   "--n_rankings_valid", "2", "--n_rankings_test", "2", "--k", "3")
    assert proc.returncode == 0, proc.stderr
    assert "vader: 32 sentences" in proc.stdout and not (tmp_path / "cache").exists()
    stats = json.loads((out / "stats.json").read_text())
    assert stats["sentences"]["total"] == 32 and sum(stats["sentences"]["by_split"].values()) == 32
    assert all(sum(n.values()) == 8 for n in stats["sentences"]["by_corpus"].values())
    texts = {split: {s["text"] for s in read(out / f"sentences_{split}.jsonl")} for split in ("train", "valid", "test")}
    # the one text all four corpora share is in one split only
    assert sum("Too short to prompt." in t for t in texts.values()) == 1
    for split in ("train", "valid", "test"):
        pairs = read(out / f"comparisons_{split}.jsonl")
        assert len(pairs) == stats["comparisons"][split] > 0
        for p in pairs:   # held-out pairs hold held-out sentences only, of one corpus, >= min_gap apart
            assert p["prompt"] == "" and {p["chosen"], p["rejected"]} <= texts[split]
            assert p["chosen_mean"] - p["rejected_mean"] >= 1.0
            assert p["chosen_id"].split(":")[0] == p["rejected_id"].split(":")[0] == p["corpus"]
        for r in read(out / f"rankings_{split}.jsonl"):
            assert len(r["completions"]) == 3 and all(a - b >= 1.0 for a, b in zip(r["means"], r["means"][1:]))
    assert len(read(out / "comparisons_train.jsonl")) == 8
    assert not texts["train"] & texts["test"]
    # the formats the rm and sft stages read
    assert [c.ranked for c in load_comparisons(out / "rankings_test.jsonl")] == \
        [tuple(r["completions"]) for r in read(out / "rankings_test.jsonl")]
    demos = load_demonstrations(out / "sft_train.jsonl")
    movies = {s["text"]: s["mean"] for s in read(out / "sentences_train.jsonl") if s["corpus"] == "movieReviewSnippets"}
    assert len(demos) == sum(m >= 2.0 for m in movies.values()) > 0
    assert all(len(d.prompt.split()) == 4 and (d.prompt + d.completion) in movies for d in demos)
    prompts = read(out / "prompts_train.jsonl")
    assert len(prompts) == sum(len(t.split()) >= 8 for t in movies)
    assert all(len(p["prompt"].split()) == 4 for p in prompts)
    assert stats["test_comparisons"]["n"] == stats["comparisons"]["test"]
    assert 0 <= stats["test_comparisons"]["rater_agreement_leave_one_out"] <= 1


def test_a_malformed_line_stops_the_command_naming_file_and_line(tmp_path):
    def drop_a_field(name, lines):
        if name == "tweets_anonDataRatings.txt":
            lines[1] = lines[1].rsplit("\t", 1)[0]
    proc = rlhfkit("data", "vader", "--archive", write_sdist(tmp_path, drop_a_field), "--out", tmp_path / "out")
    assert proc.returncode == 2      # an input error
    assert ("additional_resources/hutto_ICWSM_2014.tar.gz/hutto_ICWSM_2014/tweets_anonDataRatings.txt:2: "
            "expected 4 tab-separated fields (id, mean, sd, ratings), got 3") in proc.stderr
    assert not (tmp_path / "out").exists()


def test_the_three_archive_forms_read_the_same(tmp_path):
    sdist = write_sdist(tmp_path)
    from_sdist, _ = load_sentences(str(sdist), "")
    assert from_sdist == load_sentences(str(tmp_path / "src" / "hutto_ICWSM_2014.tar.gz"), "")[0]
    assert from_sdist == load_sentences(str(tmp_path / "src"), "")[0]
    first = next(s for s in from_sdist if s.id == "amazonReviewSnippets:1")   # the line behind the BOM
    assert first.ratings == (-4, -3, -3, -2) and first.mean == -3.0 and first.text.endswith("by its raters")


def test_the_output_is_deterministic_from_the_seed(tmp_path):
    archive = str(write_folder(tmp_path / "data"))
    files = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        run(DataVaderConfig(out=str(tmp_path / name), archive=archive, seed=seed, n_pairs_train=10))
        files.append((tmp_path / name / "comparisons_train.jsonl").read_text())
    assert files[0] == files[1] != files[2]


def _replace(name, line, old, new):
    def edit(file, lines):
        if file == name:
            assert old in lines[line - 1]
            lines[line - 1] = lines[line - 1].replace(old, new, 1)
    return edit


@pytest.mark.parametrize("name,line,old,new,message", [
    ("movieReviewSnippets_GroundTruth.txt", 3, "\t-1\t", "\t-1\tx\t",
     "expected 3 tab-separated fields (id, mean, text), got 4"),
    ("movieReviewSnippets_GroundTruth.txt", 3, "\t-1\t", "\tminus one\t", "field 'mean' must be a number"),
    ("amazonReviewSnippets_anonDataRatings.txt", 1, "[-4, -3, -3, -2]", "[-4, -3, -3,",
     "field 'ratings' must be a list"),
    ("amazonReviewSnippets_anonDataRatings.txt", 1, "[-4, -3, -3, -2]", "[-4, -3.5, -2.5, -2]",
     "field 'ratings' must be a list of integer scores"),
    ("tweets_anonDataRatings.txt", 7, "[2, 3, 3, 4]", "[2, 3, 3, 5]", "field 'ratings' holds 5, outside the scale"),
    ("tweets_anonDataRatings.txt", 7, "\t3\t", "\t2\t", "field 'mean' is 2.0 but its ratings average 3.0000"),
    ("nytEditorialSnippets_anonDataRatings.txt", 4, "4\t", "44\t", "field 'id' '44' is not in"),
    ("nytEditorialSnippets_GroundTruth.txt", 5, "5\t", "4\t", "field 'id' '4' repeats line 4"),
])
def test_malformed_lines_name_file_line_and_field(tmp_path, name, line, old, new, message):
    folder = write_folder(tmp_path / "data", _replace(name, line, old, new))
    with pytest.raises(DataError) as e:
        load_sentences(str(folder), "")
    assert f"{folder / name}:{line}: {message}" in str(e.value)


def test_an_archive_without_the_ratings_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no movieReviewSnippets_GroundTruth.txt in it"):
        load_sentences(str(tmp_path / "empty"), "")


# ---- Splits, pairs and rankings ------------------------------------------------------------
def sentence(corpus, i, mean, text=None):
    return Sentence(f"{corpus}:{i}", corpus, text or f"{corpus} {i}", mean, (0, 0), mean)


def test_pairs_are_all_the_pairs_at_least_min_gap_apart_within_a_corpus():
    # 2.3 - 1.3 is 0.9999999999999998 in floating point: the gap still counts
    group = [sentence("a", i, m) for i, m in enumerate([0.0, 0.5, 1.0, 1.5, 3.0, 1.3, 2.3])]
    other = [sentence("b", 0, -4.0), sentence("b", 1, 4.0, text="a 0")]   # same text as a:0, other corpus
    pairs = draw_pairs(group + other, 100, 1.0, np.random.default_rng(0))
    means = {(p[0].corpus, p[0].mean, p[1].mean) for p in pairs}
    expected_a = {(hi, lo) for hi in (0.0, 0.5, 1.0, 1.3, 1.5, 2.3, 3.0) for lo in (0.0, 0.5, 1.0, 1.3, 1.5, 2.3, 3.0)
                  if hi - lo >= 1.0 - 1e-9}
    assert means == {("a", hi, lo) for hi, lo in expected_a} | {("b", 4.0, -4.0)}
    assert len(pairs) == len(means)   # no pair twice


def test_a_repeated_text_is_never_paired_with_itself_and_stays_in_one_split():
    twins = [sentence("a", 0, 3.0, text="same"), sentence("a", 1, -3.0, text="same")]
    assert draw_pairs(twins, 10, 1.0, np.random.default_rng(0)) == []
    many = twins + [sentence("a", i, float(i % 5)) for i in range(2, 40)]
    splits = split_sentences(many, 0.25, 0.25, seed=3)
    assert sum(any(s.text == "same" for s in members) for members in splits.values()) == 1


def test_rankings_are_ordered_best_first_with_min_gap_between_neighbours():
    group = [sentence("a", i, m) for i, m in enumerate([0.0, 0.5, 1.0, 1.5, 3.0])]
    rankings = draw_rankings(group, 10, 3, 1.0, np.random.default_rng(0))
    # by hand: from 3.0 the next is 1.5 or 1.0 (0.5 leaves nothing 1.0 below it); then 0.5 or 0.0
    assert {tuple(s.mean for s in r) for r in rankings} == {(3.0, 1.5, 0.5), (3.0, 1.5, 0.0), (3.0, 1.0, 0.0)}
    assert draw_rankings(group, 10, 4, 1.0, np.random.default_rng(0)) == []


# ---- Rater agreement --------------------------------------------------------------------------
def test_rater_agreement_on_pairs_worked_by_hand():
    # Each pair: better scores a, worse scores b. Leave-one-out (loo): the label of (r_a, r_b) is
    # sign(mean(a without r_a) - mean(b without r_b)); agreement 1 if sign(r_a - r_b) matches, 0 if
    # it is opposite, 1/2 if r_a == r_b or the label is 0.
    # 1. a=[1,3], b=[0,2]. loo a: 1->3, 3->1; loo b: 0->2, 2->0.
    #    (1,0): label + vote + = 1; (1,2): + vs - = 0; (3,0): label sign(1-2) = - vs + = 0; (3,2): + + = 1.
    #    loo: 2/4 = 1/2. All raters: label sign(2-1) = + ; votes + - + + -> 3/4.
    # 2. a=[4,0], b=[1,1]. loo a: 4->0, 0->4; loo b: 1->1.
    #    (4,1) twice: label sign(0-1) = - vs + = 0; (0,1) twice: label + vs - = 0 -> loo 0.
    #    All raters: label sign(2-1) = +; votes + + - - -> 1/2.
    # 3. a=[3,1,2], b=[1,0]. loo a: 3->1.5, 1->2.5, 2->2; loo b: 1->0, 0->1: every label +.
    #    Votes: (3,1)+ (3,0)+ (1,1) tie (1,0)+ (2,1)+ (2,0)+ -> (5 + 1/2)/6 = 11/12, with or without loo.
    # 4. a=[2,2,2], b=[2,2]: every vote ties and every label is 0 -> 1/2 both ways.
    better = [[1, 3], [4, 0], [3, 1, 2], [2, 2, 2]]
    worse = [[0, 2], [1, 1], [1, 0], [2, 2]]
    np.testing.assert_allclose(pair_agreement(better, worse), [1 / 2, 0, 11 / 12, 1 / 2])
    np.testing.assert_allclose(pair_agreement(better, worse, leave_one_out=False), [3 / 4, 1 / 2, 11 / 12, 1 / 2])


def test_rater_agreement_does_not_depend_on_the_batching():
    rng = np.random.default_rng(0)
    better = [rng.integers(-4, 5, size=rng.integers(2, 100)).tolist() for _ in range(600)]
    worse = [rng.integers(-4, 5, size=rng.integers(2, 100)).tolist() for _ in range(600)]
    together = pair_agreement(better, worse)
    one_by_one = [pair_agreement([a], [b])[0] for a, b in zip(better[:20], worse[:20])]
    np.testing.assert_allclose(together[:20], one_by_one)


def test_longer_wins_counts_ties_half():
    assert longer_wins(["abc", "a", "ab"], ["a", "abc", "cd"]) == pytest.approx(0.5)
