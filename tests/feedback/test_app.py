"""The labeling app through its HTTP surface, as a browser or a program uses it (TestClient, a fresh
SQLite database per test)."""
import json
import os
import re

import pytest
from fastapi.testclient import TestClient

from rlhfkit.data.records import load_comparisons
from rlhfkit.feedback import campaigns
from rlhfkit.feedback.app import create_app
from rlhfkit.feedback.db import schema_version
from rlhfkit.feedback.models import SCHEMA_VERSION

ADMIN = "admin-secret"
XSS = ['<script>alert(1)</script>', '"><img src=x onerror=alert(2)>']
SQLI = ["'; DROP TABLE answers; --", "1 OR 1=1", "Robert'); DELETE FROM items;--"]


@pytest.fixture()
def app(tmp_path):
    rollouts = tmp_path / "rollouts.jsonl"
    rows = [{"prompt": f"post {i}: my friend fixed the sink. tl;dr:", "completions": [f"a{i}", f"b{i}", f"c{i}"]}
            for i in range(3)]
    rows.append({"prompt": SQLI[0], "completions": XSS + [SQLI[2]]})
    rollouts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    app = create_app(f"sqlite:///{tmp_path / 'labels.db'}", ADMIN)
    with app.state.sessions() as s:
        c = campaigns.create_campaign(s, "test", str(rollouts), overlap=2)
        app.state.campaign_id = c.id
        app.state.tokens = {name: campaigns.invite(s, c.id, name) for name in ("ann", "bob", "cat")}
    return app


def browser(app, name: str) -> TestClient:
    client = TestClient(app)
    r = client.get(f"/join/{app.state.tokens[name]}", follow_redirects=False)
    assert r.status_code == 303 and "rlhfkit_labeler" in r.cookies
    return client


def api(app, name: str) -> TestClient:
    return TestClient(app, headers={"Authorization": f"Bearer {app.state.tokens[name]}"})


def page_state(html: str) -> tuple[int, list[int], str]:
    assignment = int(re.search(r'action="/label/(\d+)"', html).group(1))
    ids = [int(x) for x in re.findall(r'data-id="(\d+)"', html)]
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)
    return assignment, ids, csrf


def test_schema_is_created_and_versioned(app):
    assert schema_version(app.state.engine) == SCHEMA_VERSION


def test_a_labeler_ranks_items_in_the_browser_and_can_undo(app):
    client = browser(app, "ann")
    page = client.get("/label").text
    assert "1 of 4" in page
    assignment, ids, csrf = page_state(page)
    assert len(ids) == 3
    r = client.post(f"/label/{assignment}", data={"csrf": csrf, "ranking": json.dumps([[i] for i in ids])},
                    follow_redirects=False)
    assert r.status_code == 303
    assert "2 of 4" in client.get("/label").text
    client.post("/label/undo", data={"csrf": csrf})
    again = client.get("/label").text
    assert "1 of 4" in again and page_state(again)[0] == assignment      # the undone item comes back first
    # ties and "can't tell" are answers too
    client.post(f"/label/{assignment}", data={"csrf": csrf, "ranking": json.dumps([[ids[0], ids[1]], [ids[2]]])})
    a2, _, _ = page_state(client.get("/label").text)
    client.post(f"/label/{a2}", data={"csrf": csrf, "cant_tell": "true", "note": "both wrong"})
    assert "3 of 4" in client.get("/label").text


def test_candidate_positions_are_shuffled_and_recorded(app):
    from rlhfkit.feedback.models import Assignment, Candidate
    shown = {}
    for name in ("ann", "bob", "cat"):
        client = api(app, name)
        while (body := client.get("/api/next").json())["assignment_id"] is not None:
            shown[body["assignment_id"]] = [c["id"] for c in body["candidates"]]
            client.post("/api/answers", json={"assignment_id": body["assignment_id"], "cant_tell": True})
    with app.state.sessions() as s:
        recorded = {a.id: a.positions for a in s.query(Assignment)}
        source = {a.id: [c.id for c in s.query(Candidate).filter_by(item_id=a.item_id).order_by(Candidate.index)]
                  for a in s.query(Assignment)}
    assert shown == recorded and len(shown) == 8
    assert all(sorted(v) == sorted(source[k]) for k, v in shown.items())
    assert any(v != source[k] for k, v in shown.items())      # all 8 in source order: chance (1/6)^8


def test_every_item_gets_overlap_labelers_and_no_more(app):
    seen: dict[int, int] = {}
    for name in ("ann", "bob", "cat"):
        client = api(app, name)
        while (body := client.get("/api/next").json())["assignment_id"] is not None:
            ranking = [[c["id"]] for c in body["candidates"]]
            assert client.post("/api/answers", json={"assignment_id": body["assignment_id"],
                                                     "ranking": ranking}).status_code == 201
            seen[body["prompt"]] = seen.get(body["prompt"], 0) + 1
    assert sorted(seen.values()) == [2, 2, 2, 2]      # 4 items x overlap 2, across 3 labelers


def test_a_second_answer_to_the_same_item_is_refused(app):
    client = api(app, "ann")
    body = client.get("/api/next").json()
    answer = {"assignment_id": body["assignment_id"], "ranking": [[c["id"]] for c in body["candidates"]]}
    assert client.post("/api/answers", json=answer).status_code == 201
    assert client.post("/api/answers", json=answer).status_code == 409
    nxt = client.get("/api/next").json()
    ids = [c["id"] for c in nxt["candidates"]]
    for bad in ([[ids[0]], [ids[0]]], [[ids[0], 99999]], []):       # repeated, foreign, empty
        assert client.post("/api/answers", json={"assignment_id": nxt["assignment_id"], "ranking": bad}).status_code == 400
    # best-of-K: naming only the best leaves the others tied below it
    assert client.post("/api/answers", json={"assignment_id": nxt["assignment_id"], "ranking": [[ids[1]]]}).status_code == 201
    with app.state.sessions() as s:
        from rlhfkit.feedback.models import Answer
        stored = s.query(Answer).filter_by(assignment_id=nxt["assignment_id"]).one().ranking
    assert stored == [[ids[1]], [ids[0], ids[2]]]


def test_export_is_what_rm_reads(app, tmp_path):
    for name in ("ann", "bob"):
        client = api(app, name)
        while (body := client.get("/api/next").json())["assignment_id"] is not None:
            ids = [c["id"] for c in body["candidates"]]
            ranking = [[i] for i in sorted(ids)] if name == "ann" else [[min(ids)], sorted(ids)[1:]]
            client.post("/api/answers", json={"assignment_id": body["assignment_id"], "ranking": ranking})
    r = TestClient(app).get(f"/admin/campaigns/{app.state.campaign_id}/export",
                            headers={"Authorization": f"Bearer {ADMIN}"})
    path = tmp_path / "export.jsonl"
    path.write_text(r.text)
    comparisons = load_comparisons(path)
    k_way = [c for c in comparisons if len(c.ranked) == 3]
    pairs = [c for c in comparisons if len(c.ranked) == 2]
    assert len(k_way) == 4 and len(pairs) == 4 * 2               # bob's ties give 2 strict pairs per item
    assert {c.labeler for c in comparisons} == {"ann", "bob"}
    assert any(c.prompt == SQLI[0] and SQLI[2] in c.ranked for c in comparisons)   # stored verbatim
    stats = TestClient(app).get(f"/admin/campaigns/{app.state.campaign_id}/stats",
                                headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert stats["answers"] == 8 and set(stats["labelers"]) == {"ann", "bob"}
    # ann and bob share every item; they agree on the pairs bob ordered (min first), ann's order is sorted
    assert stats["agreement"] == pytest.approx(1.0) and stats["agreement_pairs"] == 8
    page = TestClient(app).get(f"/admin/campaigns/{app.state.campaign_id}", headers={"Authorization": f"Bearer {ADMIN}"})
    assert page.status_code == 200 and "1.000" in page.text and "<td>ann</td><td>4</td>" in page.text


# ---- security ------------------------------------------------------------------------------
def test_model_text_renders_inert(app):
    client = browser(app, "ann")
    for _ in range(4):
        page = client.get("/label").text
        assignment, ids, csrf = page_state(page)
        if "DROP TABLE" in page:
            break
        client.post(f"/label/{assignment}", data={"csrf": csrf, "ranking": json.dumps([[i] for i in ids])})
    assert "DROP TABLE" in page
    for payload in XSS:
        assert payload not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "onerror=alert(2)&gt;" in page
    assert page.count("<script") == 1        # the page's own script only


def test_sql_injection_strings_are_stored_verbatim(app):
    client = api(app, "ann")
    for s in SQLI:
        body = client.get("/api/next").json()
        r = client.post("/api/answers", json={"assignment_id": body["assignment_id"],
                                              "ranking": [[c["id"]] for c in body["candidates"]], "note": s})
        assert r.status_code == 201
    with app.state.sessions() as s:
        from rlhfkit.feedback.models import Answer, Item
        assert sorted(a.note for a in s.query(Answer)) == sorted(SQLI)
        assert s.query(Item).count() == 4
    r = TestClient(app).post(f"/admin/campaigns/{app.state.campaign_id}/invites", data={"name": SQLI[0]},
                             headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 201


def test_a_labeler_cannot_touch_anothers_items(app):
    ann, bob = api(app, "ann"), api(app, "bob")
    body = ann.get("/api/next").json()
    answer = {"assignment_id": body["assignment_id"], "ranking": [[c["id"]] for c in body["candidates"]]}
    assert bob.post("/api/answers", json=answer).status_code == 403
    client = browser(app, "bob")
    _, _, csrf = page_state(client.get("/label").text)
    r = client.post(f"/label/{body['assignment_id']}", data={"csrf": csrf, "ranking": json.dumps(answer["ranking"])})
    assert r.status_code == 403


def test_admin_routes_refuse_labelers_and_strangers(app):
    cid = app.state.campaign_id
    for headers in ({}, {"Authorization": f"Bearer {app.state.tokens['ann']}"}, {"Authorization": "Bearer nope"}):
        client = TestClient(app, headers=headers)
        for path in ("/admin", f"/admin/campaigns/{cid}", f"/admin/campaigns/{cid}/stats",
                     f"/admin/campaigns/{cid}/export"):
            assert client.get(path).status_code == 403, (headers, path)
        assert client.post(f"/admin/campaigns/{cid}/invites", data={"name": "x"}).status_code == 403
    assert TestClient(app).get("/label").status_code == 401
    assert TestClient(app).get("/join/not-a-token").status_code == 404


def test_forms_without_the_csrf_token_are_refused(app):
    client = browser(app, "ann")
    assignment, ids, csrf = page_state(client.get("/label").text)
    ranking = json.dumps([[i] for i in ids])
    assert client.post(f"/label/{assignment}", data={"ranking": ranking}).status_code == 403
    assert client.post(f"/label/{assignment}", data={"ranking": ranking, "csrf": "0" * 64}).status_code == 403
    assert client.post("/label/undo", data={}).status_code == 403
    admin = TestClient(app)
    admin.get(f"/admin/login?token={ADMIN}", follow_redirects=False)
    assert admin.get("/admin").status_code == 200
    assert admin.post(f"/admin/campaigns/{app.state.campaign_id}/invites", data={"name": "x"}).status_code == 403


def test_tokens_are_stored_hashed(app):
    with app.state.sessions() as s:
        from rlhfkit.feedback.models import Labeler
        stored = {lab.token_hash for lab in s.query(Labeler)}
    assert not stored & set(app.state.tokens.values()) and all(len(h) == 64 for h in stored)


@pytest.mark.skipif(not os.environ.get("RLHFKIT_TEST_POSTGRES"),
                    reason="set RLHFKIT_TEST_POSTGRES=postgresql+psycopg://user:pw@host/db to test PostgreSQL")
def test_the_same_flow_on_postgresql(tmp_path):
    from rlhfkit.feedback.models import Base
    url = os.environ["RLHFKIT_TEST_POSTGRES"]
    from rlhfkit.feedback.db import make_engine
    Base.metadata.drop_all(make_engine(url))          # a fresh schema in the given database
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text(json.dumps({"prompt": SQLI[1], "completions": XSS + ["plain"]}) + "\n")
    app = create_app(url, ADMIN)
    assert schema_version(app.state.engine) == SCHEMA_VERSION
    with app.state.sessions() as s:
        cid = campaigns.create_campaign(s, "pg", str(rollouts), overlap=1).id
        token = campaigns.invite(s, cid, "ann")
    client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    body = client.get("/api/next").json()
    ranking = [[c["id"]] for c in body["candidates"]]
    assert client.post("/api/answers", json={"assignment_id": body["assignment_id"], "ranking": ranking}).status_code == 201
    assert client.post("/api/answers", json={"assignment_id": body["assignment_id"], "ranking": ranking}).status_code == 409
    export = TestClient(app).get(f"/admin/campaigns/{cid}/export", headers={"Authorization": f"Bearer {ADMIN}"})
    record = json.loads(export.text)
    assert record["prompt"] == SQLI[1] and len(record["completions"]) == 3


def test_a_twin_submit_that_passed_the_check_is_told_409_not_500(app):
    """Two submits of one assignment at once both find it unanswered; the unique key lets one in."""
    from sqlalchemy.orm import Session

    from rlhfkit.feedback.models import Answer, Assignment
    client = api(app, "ann")
    body = client.get("/api/next").json()
    ranking = [[c["id"]] for c in body["candidates"]]
    with Session(app.state.engine) as late:
        labeler = campaigns.labeler_by_token(late, app.state.tokens["ann"])
        assert late.get(Assignment, body["assignment_id"]).answer is None      # checked before the twin lands
        assert client.post("/api/answers", json={"assignment_id": body["assignment_id"],
                                                 "ranking": ranking}).status_code == 201
        with pytest.raises(campaigns.AlreadyAnswered, match="already answered"):
            campaigns.record_answer(late, labeler, body["assignment_id"], ranking, False, "")
    with app.state.sessions() as s:
        assert s.query(Answer).filter_by(assignment_id=body["assignment_id"]).count() == 1


# ---- HTTP hardening --------------------------------------------------------------------------
HEADERS = {"x-frame-options": "DENY", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


def test_every_response_carries_the_security_headers(app):
    client = browser(app, "ann")
    admin = {"Authorization": f"Bearer {ADMIN}"}
    responses = [client.get("/label"), client.get("/label"), client.get("/api/next"),
                 TestClient(app).get("/admin", headers=admin), TestClient(app).get("/label"),
                 TestClient(app).get("/join/nope"), TestClient(app).get("/admin"),
                 TestClient(app).get(f"/join/{app.state.tokens['bob']}", follow_redirects=False)]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 401, 404, 403, 303]
    for r in responses:
        assert {k: r.headers.get(k) for k in HEADERS} == HEADERS, r.request.url
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    # the page's script and style run by this response's nonce, a new one each time
    nonces = []
    for r in responses[:2] + responses[3:4]:
        nonce = re.search(r"script-src 'nonce-([^']+)'", r.headers["content-security-policy"]).group(1)
        assert f'<style nonce="{nonce}">' in r.text
        assert r.text.count("<script") == r.text.count(f'<script nonce="{nonce}">')
        nonces.append(nonce)
    assert len(set(nonces)) == 3 and 'style="' not in responses[3].text      # no inline style attributes


def test_a_body_over_the_limit_gets_413_and_stores_nothing(tmp_path):
    app = create_app(f"sqlite:///{tmp_path / 'labels.db'}", ADMIN, max_body_bytes=4096)
    rollouts = tmp_path / "r.jsonl"
    rollouts.write_text(json.dumps({"prompt": "p", "completions": ["a", "b"]}) + "\n")
    with app.state.sessions() as s:
        token = campaigns.invite(s, campaigns.create_campaign(s, "c", str(rollouts), 1).id, "ann")
    client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    body = client.get("/api/next").json()
    answer = {"assignment_id": body["assignment_id"], "ranking": [[body["candidates"][0]["id"]]]}
    big = json.dumps({**answer, "note": "x" * 5000}).encode()
    r = client.post("/api/answers", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json() == {"detail": "request body over 4096 bytes"}
    assert r.headers["x-frame-options"] == "DENY"
    # without a Content-Length (chunked) the cap holds the same
    r = client.post("/api/answers", content=iter([big[:3000], big[3000:]]), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = client.post("/label/1", content=b"csrf=" + b"0" * 5000,
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413                     # forms too
    with app.state.sessions() as s:
        from rlhfkit.feedback.models import Answer
        assert s.query(Answer).count() == 0
    within = json.dumps({**answer, "note": "x" * 3000}).encode()
    assert client.post("/api/answers", content=iter([within[:1000], within[1000:]]),
                       headers={"content-type": "application/json"}).status_code == 201


def test_invite_links_come_from_the_configured_base_url_never_the_host_header(tmp_path):
    app = create_app(f"sqlite:///{tmp_path / 'labels.db'}", ADMIN, base_url="https://label.example.org/")
    rollouts = tmp_path / "r.jsonl"
    rollouts.write_text(json.dumps({"prompt": "p", "completions": ["a", "b"]}) + "\n")
    with app.state.sessions() as s:
        cid = campaigns.create_campaign(s, "c", str(rollouts), 1).id
    r = TestClient(app).post(f"/admin/campaigns/{cid}/invites", data={"name": "ann"},
                             headers={"Authorization": f"Bearer {ADMIN}", "Host": "attacker.example"})
    assert r.status_code == 201
    link = r.json()["invite"]
    assert re.fullmatch(r"https://label\.example\.org/join/[A-Za-z0-9_-]+", link), link
    assert TestClient(app).get(link.removeprefix("https://label.example.org"), follow_redirects=False).status_code == 303
