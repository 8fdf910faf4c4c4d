"""What the app does, apart from HTTP: campaigns from rollout files, assignments, answers, export.

A rollouts file is JSONL (or Parquet / `datasets`) with "prompt" and "completions" (2..K answers),
as `rlhfkit label sample` writes; any comparison file `rlhfkit rm` reads (chosen/rejected,
summarize-from-feedback, ...) serves too, its answers shown to be labelled afresh. Rankings are
stored as groups of candidate ids, best first; a group with several ids is a tie. Export turns them
into the comparison records `rlhfkit rm` reads: a strict ranking becomes one K-way record, a ranking
with ties its strictly ordered pairs.
"""
from __future__ import annotations

import itertools
import random
import statistics
import threading

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rlhfkit.data.records import DataError, read_records, to_comparison
from rlhfkit.feedback.models import Answer, Assignment, Campaign, Candidate, Item, Labeler
from rlhfkit.feedback.security import hash_token, new_token


# the source of an item the playground made (feedback/playground.py), before the policies' names
PLAYGROUND_SOURCE = "playground: "


def create_campaign(s: Session, name: str, path: str, overlap: int) -> Campaign:
    """A campaign with one item per record of `path`; every record is checked before any is stored."""
    records = []
    for where, record in read_records(path):
        c = to_comparison(record, where)
        if len(c.ranked) > 16:
            raise DataError(f"{where}: field 'completions' holds {len(c.ranked)} answers; a campaign item "
                            "shows 2 to 16")
        records.append((c.prompt, list(c.ranked), str(where)))
    if not records:
        raise DataError(f"{path}: no records")
    campaign = Campaign(name=name, overlap=overlap)
    s.add(campaign)
    for prompt, answers, where in records:
        item = Item(campaign=campaign, prompt=prompt, source=where)
        item.candidates = [Candidate(index=i, text=a) for i, a in enumerate(answers)]
        s.add(item)
    s.commit()
    return campaign


def invite(s: Session, campaign_id: int, name: str) -> str:
    """A new labeler for the campaign; returns the token (shown once; only its hash is kept)."""
    if s.get(Campaign, campaign_id) is None:
        raise KeyError(f"no campaign {campaign_id}")
    token = new_token()
    s.add(Labeler(campaign_id=campaign_id, name=name, token_hash=hash_token(token)))
    s.commit()
    return token


def labeler_by_token(s: Session, token: str | None) -> Labeler | None:
    if not token:
        return None
    return s.scalar(select(Labeler).where(Labeler.token_hash == hash_token(token)))


def progress(s: Session, labeler: Labeler) -> tuple[int, int]:
    """(answered, total) of a labeler's campaign work: total counts what they have and what they could
    still get; their playground comparisons are not part of it."""
    campaign_items = select(Item.id).where(Item.source.not_like(PLAYGROUND_SOURCE + "%"))
    mine = select(Assignment.id).where(Assignment.labeler_id == labeler.id, Assignment.item_id.in_(campaign_items))
    answered = s.scalar(select(func.count(Answer.id)).where(Answer.assignment_id.in_(mine)))
    return answered, (s.scalar(select(func.count()).select_from(mine.subquery()))
                      + s.scalar(select(func.count()).select_from(_open_items(s, labeler).subquery())))


def _open_items(s: Session, labeler: Labeler):
    """Items of the labeler's campaign still short of `overlap` labelers and not yet given to them."""
    overlap = s.scalar(select(Campaign.overlap).where(Campaign.id == labeler.campaign_id))
    taken = select(Assignment.item_id).where(Assignment.labeler_id == labeler.id)
    return select(Item.id).where(Item.campaign_id == labeler.campaign_id, Item.assigned < overlap,
                                 Item.id.not_in(taken))


# Handing out items is read-then-write: two labelers could both take an item's last slot. The app
# runs as one process, so a lock serialises it (several processes would need row locks).
_ASSIGN_LOCK = threading.Lock()


def next_assignment(s: Session, labeler: Labeler) -> Assignment | None:
    """The labeler's unanswered assignment, or a new one on a random open item (candidates shuffled,
    the order recorded so position bias can be measured); None when nothing is left."""
    with _ASSIGN_LOCK:
        return _next_assignment(s, labeler)


def _next_assignment(s: Session, labeler: Labeler) -> Assignment | None:
    pending = s.scalar(select(Assignment).outerjoin(Answer).where(Assignment.labeler_id == labeler.id,
                                                                  Answer.id.is_(None)).order_by(Assignment.id))
    if pending is not None:
        return pending
    # a random open item: the first at or after a random id (else before it), found by index
    open_items = _open_items(s, labeler)
    start = random.randint(0, s.scalar(select(func.max(Item.id))) or 0)
    item_id = (s.scalar(open_items.where(Item.id >= start).order_by(Item.id).limit(1))
               or s.scalar(open_items.where(Item.id < start).order_by(Item.id.desc()).limit(1)))
    if item_id is None:
        return None
    item = s.get(Item, item_id)
    positions = [c.id for c in item.candidates]
    random.shuffle(positions)
    item.assigned += 1
    assignment = Assignment(item_id=item.id, labeler_id=labeler.id, positions=positions)
    s.add(assignment)
    s.commit()
    return assignment


class AnswerError(ValueError):
    pass


class AlreadyAnswered(AnswerError):
    pass


def record_answer(s: Session, labeler: Labeler, assignment_id: int, ranking: list[list[int]], cant_tell: bool,
                  note: str) -> Answer:
    """Store one answer. The ranking names candidates at most once, best first (ties: one group); the
    candidates it leaves out rank below, tied, so a best-of-K pick is a ranking of one. "Can't tell"
    needs none. A second answer to the same assignment is refused (AlreadyAnswered), also when
    both arrive at once: the unique key lets one in and the other is told so."""
    a = s.get(Assignment, assignment_id)
    if a is None or a.labeler_id != labeler.id:
        raise PermissionError("not your assignment")
    if a.answer is not None:
        raise AlreadyAnswered("already answered")
    flat = [c for group in ranking for c in group]
    if not cant_tell:
        if not flat or len(set(flat)) != len(flat) or not set(flat) <= set(a.positions):
            raise AnswerError("the ranking must name candidates of this item, each at most once")
        rest = [c for c in a.positions if c not in flat]
        if rest:     # a partial ranking (best-of-K: just the best) leaves the rest tied below it
            ranking = [*ranking, rest]
    answer = Answer(assignment_id=a.id, ranking=[] if cant_tell else ranking, cant_tell=cant_tell, note=note[:2000])
    s.add(answer)
    try:
        s.commit()
    except IntegrityError:
        s.rollback()
        if s.scalar(select(Answer.id).where(Answer.assignment_id == assignment_id)) is None:
            raise      # not the twin submit: a bug to see, not a 409
        raise AlreadyAnswered("already answered") from None
    return answer


def undo_last(s: Session, labeler: Labeler) -> bool:
    """Delete the labeler's latest campaign answer, so its item comes back next (a playground pick
    has no item to come back to: it stays)."""
    last = s.scalar(select(Answer).join(Assignment).join(Item, Assignment.item_id == Item.id)
                    .where(Assignment.labeler_id == labeler.id, Item.source.not_like(PLAYGROUND_SOURCE + "%"))
                    .order_by(Answer.id.desc()))
    if last is None:
        return False
    s.delete(last)
    s.commit()
    return True


def _answers(s: Session, campaign_id: int):
    q = (select(Answer, Assignment, Item, Labeler).join(Assignment, Answer.assignment_id == Assignment.id)
         .join(Item, Assignment.item_id == Item.id).join(Labeler, Assignment.labeler_id == Labeler.id)
         .where(Item.campaign_id == campaign_id).order_by(Answer.id))
    return s.execute(q).all()


def export_records(s: Session, campaign_id: int) -> list[dict]:
    """Comparison records for `rlhfkit rm`: a strict ranking -> {"prompt", "completions"} best first;
    with ties -> one {"prompt", "chosen", "rejected"} per strictly ordered pair; "can't tell" -> none."""
    out = []
    for answer, _, item, labeler in _answers(s, campaign_id):
        if answer.cant_tell:
            continue
        text = {c.id: c.text for c in item.candidates}
        if all(len(g) == 1 for g in answer.ranking):
            out.append({"prompt": item.prompt, "completions": [text[g[0]] for g in answer.ranking],
                        "labeler": labeler.name})
            continue
        for hi, lo in itertools.combinations(range(len(answer.ranking)), 2):
            for a, b in itertools.product(answer.ranking[hi], answer.ranking[lo]):
                if text[a] == text[b]:      # twins ranked apart hold no preference (`rlhfkit rm` refuses them)
                    continue
                out.append({"prompt": item.prompt, "chosen": text[a], "rejected": text[b], "labeler": labeler.name})
    return out


def _better_pairs(ranking: list[list[int]]) -> set[tuple[int, int]]:
    return {(a, b) for hi, lo in itertools.combinations(range(len(ranking)), 2)
            for a in ranking[hi] for b in ranking[lo]}


def _pair_agreement(x: set[tuple[int, int]], y: set[tuple[int, int]]) -> list[float]:
    """For each candidate pair both rankings order: 1 if they order it the same way, else 0."""
    ux, uy = {frozenset(p): p for p in x}, {frozenset(p): p for p in y}
    return [1.0 if ux[k] == uy[k] else 0.0 for k in ux.keys() & uy.keys()]


def campaign_stats(s: Session, campaign_id: int, scorers: dict | None = None) -> dict:
    """Per-labeler throughput, agreement between labelers on shared items (share of candidate pairs
    both ordered, ordered the same way), position bias (how often the top-ranked answer was shown
    in each position), and for each scorer given (name -> (prompt, answers) -> scores or None) the
    share of labelled pairs it orders like the labeler."""
    rows = _answers(s, campaign_id)
    with_scorers = {name: [] for name in (scorers or {})}
    per_labeler: dict[str, list] = {}
    by_item: dict[int, list[set]] = {}
    top_position: dict[int, int] = {}
    for answer, assignment, item, labeler in rows:
        per_labeler.setdefault(labeler.name, []).append(answer.created_at)
        if answer.cant_tell:
            continue
        pairs = _better_pairs(answer.ranking)
        by_item.setdefault(item.id, []).append(pairs)
        ids = [c.id for c in item.candidates]
        for name, scorer in (scorers or {}).items():
            scores = scorer(item.prompt, [c.text for c in item.candidates])
            if scores is not None:
                score = dict(zip(ids, scores))
                with_scorers[name] += [1.0 if score[a] > score[b] else 0.0 for a, b in pairs if score[a] != score[b]]
        if len(answer.ranking[0]) == 1:
            pos = assignment.positions.index(answer.ranking[0][0])
            top_position[pos] = top_position.get(pos, 0) + 1
    agree = [same for pair_sets in by_item.values() for x, y in itertools.combinations(pair_sets, 2)
             for same in _pair_agreement(x, y)]
    throughput = {}
    for name, times in per_labeler.items():
        span = (max(times) - min(times)).total_seconds() / 3600 if len(times) > 1 else 0.0
        throughput[name] = {"answers": len(times), "per_hour": len(times) / span if span > 0 else None}
    return {"answers": len(rows), "labelers": throughput,
            "agreement": statistics.fmean(agree) if agree else None, "agreement_pairs": len(agree),
            "top_answer_position": {str(k): v for k, v in sorted(top_position.items())},
            "agreement_with": {name: {"agreement": statistics.fmean(v) if v else None, "pairs": len(v)}
                               for name, v in with_scorers.items()}}
