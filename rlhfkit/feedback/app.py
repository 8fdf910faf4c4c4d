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

from rlhfkit.feedback.db import init_schema, make_engine, session_factory
from rlhfkit.feedback.routers import admin, api, label
from rlhfkit.feedback.security import hash_token


def create_app(db_url: str, admin_token: str, secret: bytes | None = None, scorers: dict | None = None) -> FastAPI:
    """The app on `db_url` (schema created if new); only the admin token's hash is kept. `scorers`
    (name -> (prompt, answers) -> scores) are what the labels are held against on the stats page."""
    engine = make_engine(db_url)
    init_schema(engine)
    app = FastAPI(title="rlhfkit labeling", docs_url=None, redoc_url=None)
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.admin_hash = hash_token(admin_token)
    app.state.secret = secret or secrets.token_bytes(32)
    app.state.scorers = scorers or {}
    # autoescape on: model text is untrusted and is always rendered escaped
    app.state.templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    for router in (label.router, api.router, admin.router):
        app.include_router(router)
    return app
