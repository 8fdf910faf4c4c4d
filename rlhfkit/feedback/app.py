"""`rlhfkit label serve`: the labeling web app (FastAPI, server-rendered pages, SQLAlchemy).

    rlhfkit label campaign create --from runs/label/rollouts.jsonl --name tldr-1 --overlap 2
    rlhfkit label serve --db sqlite:///runs/label/labels.db --admin_token "$TOKEN"
    rlhfkit label export --campaign 1 --out runs/label/comparisons.jsonl
"""
from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import FastAPI
from fastapi.templating import Jinja2Templates

from rlhfkit.feedback.db import open_database, session_factory
from rlhfkit.feedback.middleware import Admission, BodyLimit, SecurityHeaders
from rlhfkit.feedback.routers import admin, api, label, play
from rlhfkit.feedback.security import hash_token


def create_app(db_url: str, admin_token: str, secret: bytes | None = None, scorers: dict | None = None, *,
               base_url: str = "http://127.0.0.1:8000", create: bool = True, pool_size: int = 16,
               max_body_bytes: int = 64 * 1024, playground=None) -> FastAPI:
    """The app on `db_url` (with `create`, made if new); only the admin token's hash is kept.
    `scorers` (name -> (prompt, answers) -> scores) are what the labels are held against on the
    stats page; `base_url` is where the app is reached, for invite links (never the request's Host
    header, which a client chooses); `pool_size` database connections serve as many requests at once;
    `playground` (feedback.playground.Playground) serves /play, two policies side by side."""
    engine = open_database(db_url, create, pool_size)
    app = FastAPI(title="rlhfkit labeling", docs_url=None, redoc_url=None)
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.admin_hash = hash_token(admin_token)
    app.state.secret = secret or secrets.token_bytes(32)
    app.state.scorers = scorers or {}
    app.state.base_url = base_url.rstrip("/")
    app.state.playground = playground
    # autoescape on: model text is untrusted and is always rendered escaped
    app.state.templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    for router in (label.router, api.router, admin.router, play.router):
        app.include_router(router)
    # the last added runs first: headers on every response, then the body cap, then admission
    app.add_middleware(Admission, slots=pool_size)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app
