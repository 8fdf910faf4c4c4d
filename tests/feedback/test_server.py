"""A real uvicorn server under load (every answer posted once, or twice at once), and killed in the
middle of a campaign."""
import asyncio
import concurrent.futures as cf
import json
import os
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


# ---- duplicate storm ------------------------------------------------------------------------
async def _storm_labeler(url: str, token: str, codes: list[int], latencies: list[float],
                         pairs: list[tuple[int, int]]) -> list[int]:
    """One labeler posting every answer twice at once, on two connections; the answer ids it got 201 for."""
    acked = []
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:

        async def timed(method: str, path: str, **kw) -> httpx.Response:
            t = time.perf_counter()
            try:
                r = await client.request(method, path, **kw)
            except httpx.TransportError:      # a dropped connection counts as a failed request (code 0)
                r = httpx.Response(0)
            latencies.append(time.perf_counter() - t)
            codes.append(r.status_code)
            return r

        for _ in range(1000):         # bounded: a server that keeps failing must not hang the test
            r = await timed("GET", "/api/next")
            if r.status_code != 200:
                continue
            body = r.json()
            if body["assignment_id"] is None:
                break
            answer = {"assignment_id": body["assignment_id"], "ranking": [[c["id"]] for c in body["candidates"]]}
            twins = await asyncio.gather(*(timed("POST", "/api/answers", json=answer) for _ in range(2)))
            pairs.append(tuple(sorted(r.status_code for r in twins)))
            acked += [r.json()["answer_id"] for r in twins if r.status_code == 201]
    return acked


def duplicate_storm(tmp_path, server_for, n_labelers: int, answers: int) -> dict:
    """`n_labelers` labelers answer a campaign of `answers` items, every answer posted twice at once.
    lost: items left unanswered or acknowledged answers missing; duplicated: twins both acknowledged,
    or items given to two labelers."""
    db, tokens = make_campaign(tmp_path, items=answers, labelers=n_labelers)
    server = server_for(db)
    codes, latencies, pairs = [], [], []

    async def everyone() -> list[list[int]]:
        return await asyncio.gather(*(_storm_labeler(server.url, t, codes, latencies, pairs) for t in tokens))
    t0 = time.perf_counter()
    acked = [a for ids in asyncio.run(everyone()) for a in ids]
    seconds = time.perf_counter() - t0
    n_stored, over = stored(db)
    with Session(make_engine(db)) as s:
        missing = set(acked) - set(s.scalars(select(Answer.id)))
    latencies.sort()
    return {"labelers": n_labelers, "items": answers, "seconds": round(seconds, 1),
            "answers_per_s": round(n_stored / seconds, 1), "requests": len(codes), "5xx": sum(c >= 500 for c in codes),
            "dropped": codes.count(0), "twins": len(pairs), "twins_201_409": pairs.count((201, 409)),
            "lost": answers - n_stored + len(missing), "duplicated": pairs.count((201, 201)) + over,
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
            "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1)}


def test_a_duplicate_storm_gets_409s_and_loses_nothing(tmp_path, server_for):
    """Fifty labelers, every answer posted twice at once: one twin 201, the other 409, never a 5xx.
    The full storm: RLHFKIT_STORM_ANSWERS=10000 pytest tests/feedback/test_server.py -k storm -s."""
    report = duplicate_storm(tmp_path, server_for, 50, int(os.environ.get("RLHFKIT_STORM_ANSWERS", 500)))
    print("STORM", json.dumps(report))
    assert report["5xx"] == report["dropped"] == report["lost"] == report["duplicated"] == 0, report
    assert report["twins"] == report["twins_201_409"] == report["items"], report
    # p99 is 0.7-0.9 s on 2 cores (bench/README.md); CI's machine is shared, so the bound here is
    # looser, yet far under the 30 s pool timeouts the storm used to end in
    assert report["p99_ms"] < 5000, report
