"""Shared request dependencies, as `Annotated` aliases: the database session, the labeler behind a
cookie or bearer token, the admin check, and the CSRF check for forms."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, HTTPException, Request
from sqlalchemy.orm import Session

from rlhfkit.feedback.campaigns import labeler_by_token
from rlhfkit.feedback.models import Labeler
from rlhfkit.feedback.security import csrf_ok, hash_token

LABELER_COOKIE, ADMIN_COOKIE = "rlhfkit_labeler", "rlhfkit_admin"


def get_db(request: Request):
    with request.app.state.sessions() as s:
        yield s


DB = Annotated[Session, Depends(get_db)]


def bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else None


def labeler_token(request: Request) -> str | None:
    return bearer(request) or request.cookies.get(LABELER_COOKIE)


def current_labeler(request: Request, db: DB) -> Labeler:
    labeler = labeler_by_token(db, labeler_token(request))
    if labeler is None:
        raise HTTPException(401, "open your invite link first")
    return labeler


CurrentLabeler = Annotated[Labeler, Depends(current_labeler)]


def admin_token(request: Request) -> str:
    token = bearer(request) or request.cookies.get(ADMIN_COOKIE)
    if not token or hash_token(token) != request.app.state.admin_hash:
        raise HTTPException(403, "admin token required")
    return token


Admin = Annotated[str, Depends(admin_token)]


def check_csrf(request: Request, session_token: str | None, csrf: str | None) -> None:
    """Forms posted with a cookie must carry the page's CSRF token; bearer-token API calls need none
    (a browser never attaches that header on its own)."""
    if bearer(request):
        return
    if not session_token or not csrf_ok(request.app.state.secret, session_token, csrf):
        raise HTTPException(403, "missing or wrong CSRF token")


CsrfField = Annotated[str | None, Form()]
