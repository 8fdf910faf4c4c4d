"""Admin pages and calls (admin token as a cookie from /admin/login, or a bearer token):
campaigns and their progress, invites, agreement and position bias, export."""
from __future__ import annotations

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from sqlalchemy import func, select

import json

from rlhfkit.feedback import campaigns
from rlhfkit.feedback.deps import ADMIN_COOKIE, DB, Admin, CsrfField, check_csrf
from rlhfkit.feedback.models import Answer, Assignment, Campaign, Item, Labeler
from rlhfkit.feedback.security import csrf_token, hash_token

router = APIRouter(prefix="/admin")


@router.get("/login")
def login(request: Request, token: str) -> RedirectResponse:
    if hash_token(token) != request.app.state.admin_hash:
        raise HTTPException(403, "wrong admin token")
    response = RedirectResponse("/admin", status_code=303)
    response.set_cookie(ADMIN_COOKIE, token, httponly=True, samesite="strict")
    return response


def _overview(db) -> list[dict]:
    rows = []
    for c in db.scalars(select(Campaign).order_by(Campaign.id)):
        # playground picks are answers of the campaign, but no item of its work
        work = (Item.campaign_id == c.id, Item.source.not_like(campaigns.PLAYGROUND_SOURCE + "%"))
        items = db.scalar(select(func.count(Item.id)).where(*work))
        answers = db.scalar(select(func.count(Answer.id)).join(Assignment).join(Item).where(*work))
        labelers = db.scalar(select(func.count(Labeler.id)).where(Labeler.campaign_id == c.id))
        rows.append({"id": c.id, "name": c.name, "items": items, "overlap": c.overlap, "answers": answers,
                     "needed": items * c.overlap, "labelers": labelers})
    return rows


@router.get("", response_class=HTMLResponse)
def home(request: Request, token: Admin, db: DB):
    return request.app.state.templates.TemplateResponse(
        request, "admin.html", {"campaigns": _overview(db), "csrf": csrf_token(request.app.state.secret, token)})


@router.post("/campaigns/{campaign_id:int}/invites")
def new_invite(request: Request, campaign_id: int, token: Admin, db: DB, name: str = Form(...),
               csrf: CsrfField = None):
    check_csrf(request, token, csrf)
    try:
        labeler_token = campaigns.invite(db, campaign_id, name)
    except KeyError as e:
        raise HTTPException(404, str(e)) from None
    link = f"{request.app.state.base_url}/join/{labeler_token}"
    return JSONResponse({"name": name, "invite": link}, status_code=201)


@router.get("/campaigns/{campaign_id:int}", response_class=HTMLResponse)
def campaign_page(request: Request, campaign_id: int, token: Admin, db: DB):
    campaign = db.get(Campaign, campaign_id)
    if campaign is None:
        raise HTTPException(404, "no such campaign")
    stats = campaigns.campaign_stats(db, campaign_id, request.app.state.scorers)
    return request.app.state.templates.TemplateResponse(
        request, "stats.html", {"name": campaign.name, "campaign_id": campaign_id, "stats": stats})


@router.get("/campaigns/{campaign_id:int}/stats")
def stats(request: Request, campaign_id: int, token: Admin, db: DB) -> dict:
    if db.get(Campaign, campaign_id) is None:
        raise HTTPException(404, "no such campaign")
    return campaigns.campaign_stats(db, campaign_id, request.app.state.scorers)


@router.get("/campaigns/{campaign_id:int}/export")
def export(campaign_id: int, token: Admin, db: DB) -> PlainTextResponse:
    if db.get(Campaign, campaign_id) is None:
        raise HTTPException(404, "no such campaign")
    lines = [json.dumps(r) for r in campaigns.export_records(db, campaign_id)]
    return PlainTextResponse("\n".join(lines) + ("\n" if lines else ""), media_type="application/x-ndjson")
