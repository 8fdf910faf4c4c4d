"""The playground's page and JSON API (feedback/playground.py): type a prompt, get two policies'
answers side by side, pick one or a tie. The page works with plain forms: while the answers are
being written it reloads itself, so no request waits on generation."""
from __future__ import annotations

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel

from rlhfkit.feedback import campaigns
from rlhfkit.feedback.deps import DB, CsrfField, CurrentLabeler, check_csrf, labeler_token
from rlhfkit.feedback.playground import Busy, Playground
from rlhfkit.feedback.security import csrf_token

router = APIRouter()
MAX_PROMPT_CHARS = 8000


def playground(request: Request) -> Playground:
    p = request.app.state.playground
    if p is None:
        raise HTTPException(404, "no playground: start the app with `rlhfkit label serve --policies a=DIR,b=DIR`")
    return p


def prompt_of(context: str, message: str) -> str:
    """The new message, after the conversation so far when it continues one."""
    if not message.strip():
        raise HTTPException(400, "type a prompt")
    prompt = f"{context}\n{message}" if context else message
    if len(prompt) > MAX_PROMPT_CHARS:
        raise HTTPException(413, f"the prompt is over {MAX_PROMPT_CHARS} characters")
    return prompt


def page(request: Request, labeler, **context) -> HTMLResponse:
    csrf = csrf_token(request.app.state.secret, labeler_token(request))
    return request.app.state.templates.TemplateResponse(request, "play.html",
                                                        {"labeler": labeler, "csrf": csrf, **context})


@router.get("/play", response_class=HTMLResponse)
def play_page(request: Request, labeler: CurrentLabeler, context: str = ""):
    playground(request)
    return page(request, labeler, context=context)


@router.post("/play")
def start(request: Request, labeler: CurrentLabeler, csrf: CsrfField = None, message: str = Form(""),
          context: str = Form("")) -> RedirectResponse:
    check_csrf(request, labeler_token(request), csrf)
    job = _started(playground(request), labeler, prompt_of(context, message))
    return RedirectResponse(f"/play/{job}", status_code=303)


def _started(p: Playground, labeler, prompt: str) -> str:
    try:
        return p.start(labeler, prompt)
    except Busy as e:
        raise HTTPException(429, str(e)) from None


@router.get("/play/{job}", response_class=HTMLResponse)
def comparison_page(request: Request, job: str, labeler: CurrentLabeler):
    p = playground(request)
    c = p.get(labeler, job)
    if c is None:
        raise HTTPException(404, "no such comparison (answered already, or not yours)")
    view = p.view(c)
    if view["status"] == "failed":        # shown once, then forgotten: the person can ask again
        p.drop(labeler, job)
    response = page(request, labeler, job=job, **view)
    if view["status"] == "pending":
        response.headers["Refresh"] = "1"      # ask again in a second: the answers are being written
    return response


@router.post("/play/{job}/pick", response_class=HTMLResponse)
def pick(request: Request, job: str, labeler: CurrentLabeler, db: DB, csrf: CsrfField = None,
         choice: str = Form("")):
    check_csrf(request, labeler_token(request), csrf)
    p = playground(request)
    c = p.get(labeler, job)
    stored = _picked(p, db, labeler, job, choice)
    view = p.view(c)                  # after the pick, which needs the answers written
    chosen = view["answers"][0 if choice == "left" else 1] if choice != "tie" else view["answers"][0]
    return page(request, labeler, picked=choice, revealed=stored["policies"], prompt=view["prompt"],
                answers=view["answers"], context=f"{view['prompt']}{chosen}")


def _picked(p: Playground, db, labeler, job: str, choice: str) -> dict:
    try:
        return p.pick(db, labeler, job, choice)
    except campaigns.AlreadyAnswered as e:
        raise HTTPException(409, str(e)) from None
    except campaigns.AnswerError as e:
        raise HTTPException(400, str(e)) from None


# ---- JSON API (bearer token, as /api) ------------------------------------------------------------
class PlayIn(BaseModel):
    prompt: str
    context: str = ""


class PickIn(BaseModel):
    choice: str


@router.post("/api/play", status_code=202)
def api_start(body: PlayIn, request: Request, labeler: CurrentLabeler) -> dict:
    check_csrf(request, labeler_token(request), request.headers.get("x-csrf-token"))
    return {"job": _started(playground(request), labeler, prompt_of(body.context, body.prompt))}


@router.get("/api/play/{job}")
def api_view(job: str, request: Request, labeler: CurrentLabeler) -> dict:
    p = playground(request)
    c = p.get(labeler, job)
    if c is None:
        raise HTTPException(404, "no such comparison (answered already, or not yours)")
    view = p.view(c)
    if view["status"] == "failed":
        p.drop(labeler, job)
    return view


@router.post("/api/play/{job}/pick", status_code=201)
def api_pick(job: str, body: PickIn, request: Request, labeler: CurrentLabeler, db: DB) -> dict:
    check_csrf(request, labeler_token(request), request.headers.get("x-csrf-token"))
    return _picked(playground(request), db, labeler, job, body.choice)
