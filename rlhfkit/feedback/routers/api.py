"""The JSON API: what a labeling page does, for programs (the simulated labelers, load tests).
Authenticated by the invite token as a bearer token."""
from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from rlhfkit.feedback import campaigns
from rlhfkit.feedback.deps import DB, CurrentLabeler
from rlhfkit.feedback.models import Candidate

router = APIRouter(prefix="/api")


class AnswerIn(BaseModel):
    assignment_id: int
    ranking: list[list[int]] = Field(default_factory=list, description="groups of candidate ids, best first")
    cant_tell: bool = False
    note: str = ""


@router.get("/next")
def next_item(labeler: CurrentLabeler, db: DB) -> dict:
    assignment = campaigns.next_assignment(db, labeler)
    done, total = campaigns.progress(db, labeler)
    if assignment is None:
        return {"assignment_id": None, "done": done, "total": total}
    by_id = {c.id: c.text for c in db.query(Candidate).filter(Candidate.id.in_(assignment.positions))}
    return {"assignment_id": assignment.id, "prompt": assignment.item.prompt,
            "candidates": [{"id": i, "text": by_id[i]} for i in assignment.positions], "done": done, "total": total}


@router.post("/answers", status_code=201)
def answer(body: AnswerIn, labeler: CurrentLabeler, db: DB) -> dict:
    try:
        a = campaigns.record_answer(db, labeler, body.assignment_id, body.ranking, body.cant_tell, body.note)
    except PermissionError as e:
        raise HTTPException(403, str(e)) from None
    except campaigns.AlreadyAnswered as e:
        raise HTTPException(409, str(e)) from None
    except campaigns.AnswerError as e:
        raise HTTPException(400, str(e)) from None
    return {"answer_id": a.id}


@router.post("/undo")
def undo(labeler: CurrentLabeler, db: DB) -> dict:
    return {"undone": campaigns.undo_last(db, labeler)}
