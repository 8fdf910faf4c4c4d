"""A real uvicorn server under load, and killed in the middle of a campaign."""
import concurrent.futures as cf
import json
import signal
import statistics
import time

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rlhfkit.feedback import campaigns
from rlhfkit.feedback.db import init_schema, make_engine
from rlhfkit.feedback.models import Answer, Assignment


def make_campaign(tmp_path, items: int, labelers: int, overlap: int = 1) -> tuple[str, list[str]]:
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text("".join(json.dumps({"prompt": f"prompt {i}", "completions": [f"a {i}", f"b {i}"]}) + "\n"
                                for i in range(items)))
    db = f"sqlite:///{tmp_path / 'labels.db'}"
    engine = make_engine(db)
    init_schema(engine)
    with Session(engine) as s:
        c = campaigns.create_campaign(s, "load", str(rollouts), overlap)
        tokens = [campaigns.invite(s, c.id, f"sim{i}") for i in range(labelers)]
    return db, tokens


def label_until_done(url: str, token: str, limit: int | None = None) -> tuple[list[int], list[float]]:
    """One simulated labeler: next -> answer until nothing is left; (acknowledged answer ids, latencies)."""
    acked, latencies = [], []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        while limit is None or len(acked) < limit:
            t = time.perf_counter()
            body = client.get("/api/next").json()
            if body["assignment_id"] is None:
                break
            r = client.post("/api/answers", json={"assignment_id": body["assignment_id"],
                                                  "ranking": [[c["id"]] for c in body["candidates"]]})
            latencies.append(time.perf_counter() - t)
            if r.status_code == 201:
                acked.append(r.json()["answer_id"])
    return acked, latencies


def stored(db: str) -> tuple[int, int]:
    """(answers in the database, assignments holding more than one answer or items over overlap)."""
    with Session(make_engine(db)) as s:
        n = s.scalar(select(func.count(Answer.id)))
        over = s.scalar(select(func.count()).select_from(
            select(Assignment.item_id).group_by(Assignment.item_id).having(func.count(Assignment.id) > 1).subquery()))
    return n, over


def test_fifty_concurrent_labelers_lose_and_duplicate_nothing(tmp_path, server_for, request):
    n_labelers, per_labeler = 50, int(request.config.getoption("--load-answers")) // 50
    db, tokens = make_campaign(tmp_path, items=n_labelers * per_labeler, labelers=n_labelers)
    server = server_for(db)
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(n_labelers) as pool:
        results = list(pool.map(lambda tok: label_until_done(server.url, tok), tokens))
    seconds = time.perf_counter() - t0
    acked = [a for ids, _ in results for a in ids]
    latencies = sorted(x for _, lat in results for x in lat)
    assert len(acked) == n_labelers * per_labeler == len(set(acked))
    assert stored(db) == (len(acked), 0)         # every acknowledged answer once; no item labelled twice
    report = {"labelers": n_labelers, "answers": len(acked), "seconds": round(seconds, 1),
              "answers_per_s": round(len(acked) / seconds, 1),
              "p95_latency_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
              "median_latency_ms": round(1000 * statistics.median(latencies), 1)}
    print("LOAD", json.dumps(report))


def test_a_killed_server_loses_no_committed_answer(tmp_path, server_for):
    db, tokens = make_campaign(tmp_path, items=60, labelers=2)
    server = server_for(db)
    acked, _ = label_until_done(server.url, tokens[0], limit=25)
    server.stop(signal.SIGKILL)                  # no shutdown handler runs
    assert stored(db)[0] == 25
    server = server_for(db)
    more, _ = label_until_done(server.url, tokens[0])
    assert stored(db) == (60, 0) and len(acked) + len(more) == 60 and not set(acked) & set(more)
