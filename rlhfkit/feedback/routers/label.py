"""Labeler pages: join by invite, rank the candidates of one item at a time, undo the last answer."""
from __future__ import annotations

import json

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from rlhfkit.feedback import campaigns
from rlhfkit.feedback.deps import DB, LABELER_COOKIE, CsrfField, CurrentLabeler, check_csrf, labeler_token
from rlhfkit.feedback.models import Candidate
from rlhfkit.feedback.security import csrf_token

router = APIRouter()


@router.get("/join/{token}")
def join(token: str, db: DB) -> RedirectResponse:
    if campaigns.labeler_by_token(db, token) is None:
        raise HTTPException(404, "unknown invite")
    response = RedirectResponse("/label", status_code=303)
    response.set_cookie(LABELER_COOKIE, token, httponly=True, samesite="strict")
    return response


@router.get("/label", response_class=HTMLResponse)
def label_page(request: Request, labeler: CurrentLabeler, db: DB):
    assignment = campaigns.next_assignment(db, labeler)
    done, total = campaigns.progress(db, labeler)
    context = {"labeler": labeler, "done": done, "total": total,
               "csrf": csrf_token(request.app.state.secret, labeler_token(request))}
    if assignment is None:
        return request.app.state.templates.TemplateResponse(request, "done.html", context)
    by_id = {c.id: c for c in db.query(Candidate).filter(Candidate.id.in_(assignment.positions))}
    context.update(assignment=assignment, item=assignment.item,
                   candidates=[by_id[i] for i in assignment.positions])
    return request.app.state.templates.TemplateResponse(request, "label.html", context)


@router.post("/label/undo")
def undo(request: Request, labeler: CurrentLabeler, db: DB, csrf: CsrfField = None) -> RedirectResponse:
    check_csrf(request, labeler_token(request), csrf)
    campaigns.undo_last(db, labeler)
    return RedirectResponse("/label", status_code=303)


@router.post("/label/{assignment_id:int}")
def submit(request: Request, assignment_id: int, labeler: CurrentLabeler, db: DB, csrf: CsrfField = None,
           ranking: str = Form(""), cant_tell: bool = Form(False), note: str = Form("")) -> RedirectResponse:
    """ranking: JSON list of groups of candidate ids, best first, e.g. [[3], [1, 2]] (1 and 2 tied)."""
    check_csrf(request, labeler_token(request), csrf)
    try:
        groups = json.loads(ranking) if ranking else []
        campaigns.record_answer(db, labeler, assignment_id, groups, cant_tell, note)
    except PermissionError as e:
        raise HTTPException(403, str(e)) from None
    except campaigns.AlreadyAnswered as e:
        raise HTTPException(409, f"answer refused: {e}") from None
    except (campaigns.AnswerError, ValueError, TypeError) as e:
        raise HTTPException(400, f"answer refused: {e}") from None
    return RedirectResponse("/label", status_code=303)
