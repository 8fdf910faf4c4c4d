"""The playground (/play): two policies answer a signed-in person's prompt side by side; the pick is
stored as a campaign answer and exported to `rlhfkit rm` the same way."""
import json
import re
import threading

import pytest
from fastapi.testclient import TestClient

from rlhfkit.data.records import load_comparisons
from rlhfkit.feedback import campaigns
from rlhfkit.feedback.app import create_app
from rlhfkit.feedback.models import Answer, Assignment, Item
from rlhfkit.feedback.playground import Playground

ADMIN = "admin-secret"
XSS = '<script>alert(1)</script>'


def fake_policy(name: str, prompt: str) -> str:
    return f"{name} says: {prompt[-12:]}"


@pytest.fixture()
def app(tmp_path):
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text(json.dumps({"prompt": "post: tl;dr:", "completions": ["a", "b"]}) + "\n")
    app = create_app(f"sqlite:///{tmp_path / 'labels.db'}", ADMIN,
                     playground=Playground({"sft": "x", "ppo": "y"}, generate=fake_policy))
    with app.state.sessions() as s:
        c = campaigns.create_campaign(s, "test", str(rollouts), overlap=1)
        app.state.campaign_id = c.id
        app.state.tokens = {name: campaigns.invite(s, c.id, name) for name in ("ann", "bob")}
    return app


def signed_in(app, name: str) -> TestClient:
    client = TestClient(app)
    client.get(f"/join/{app.state.tokens[name]}", follow_redirects=False)
    return client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


def ask(client: TestClient, message: str, context: str = "") -> str:
    """Post a prompt; the answers are ready when the page stops asking to be reloaded. Returns its URL."""
    csrf = csrf_of(client.get("/play").text)
    r = client.post("/play", data={"csrf": csrf, "message": message, "context": context}, follow_redirects=False)
    assert r.status_code == 303
    url = r.headers["location"]
    app_pg = client.app.state.playground
    app_pg.jobs[url.rsplit("/", 1)[1]].answers.result(timeout=10)
    page = client.get(url)
    assert "Refresh" not in page.headers
    return url


def test_a_person_compares_two_policies_and_the_pick_exports_to_rm(app, tmp_path):
    client = signed_in(app, "ann")
    url = ask(client, f"tell me about {XSS}")
    page = client.get(url).text
    assert XSS not in page and "&lt;script&gt;" in page                # the prompt comes back escaped
    left = re.search(r'id="left"><b>Left</b><div class="text">([^<]*)<', page).group(1)
    r = client.post(f"{url}/pick", data={"csrf": csrf_of(page), "choice": "left"})
    assert r.status_code == 200 and "left was better" in r.text
    with app.state.sessions() as s:
        item = s.query(Item).filter(Item.source.like("playground%")).one()
        assignment = s.query(Assignment).filter_by(item_id=item.id).one()
        answer = s.query(Answer).filter_by(assignment_id=assignment.id).one()
        by_id = {c.id: c.text for c in item.candidates}
        # the order shown is recorded; the left answer is ranked first; candidates follow --policies
        assert by_id[assignment.positions[0]].replace("<", "&lt;").replace(">", "&gt;") == left
        assert answer.ranking == [[assignment.positions[0]], [assignment.positions[1]]]
        assert [c.text.split(" says")[0] for c in item.candidates] == ["sft", "ppo"]
        assert item.source == "playground: sft vs ppo" and item.assigned == 1     # never handed out to label
    r = TestClient(app).get(f"/admin/campaigns/{app.state.campaign_id}/export",
                            headers={"Authorization": f"Bearer {ADMIN}"})
    (tmp_path / "export.jsonl").write_text(r.text)
    exported = load_comparisons(str(tmp_path / "export.jsonl"))
    assert [c.ranked[0] for c in exported if c.prompt.startswith("tell me")] == [by_id[assignment.positions[0]]]
    # a second pick of the same comparison is refused; the labeling queue is untouched by the playground
    assert client.post(f"{url}/pick", data={"csrf": csrf_of(page), "choice": "right"}).status_code == 400
    assert "1 of 1" in client.get("/label").text
    client.post("/label/undo", data={"csrf": csrf_of(page)})      # undo on the labeling page leaves the pick alone
    with app.state.sessions() as s:
        assert s.query(Answer).filter_by(assignment_id=assignment.id).count() == 1


def test_a_conversation_continues_from_the_chosen_answer(app):
    client = signed_in(app, "ann")
    url = ask(client, "hello")
    page = client.get(url).text
    right = re.search(r'id="right"><b>Right</b><div class="text">([^<]*)<', page).group(1)
    done = client.post(f"{url}/pick", data={"csrf": csrf_of(page), "choice": "right"}).text
    context = re.search(r'name="context" value="([^"]*)"', done).group(1)
    assert context == f"hello{right}"
    url2 = ask(client, "and then?", context=context)
    assert client.app.state.playground.jobs[url2.rsplit("/", 1)[1]].prompt == f"hello{right}\nand then?"


def test_a_tie_holds_no_preference_and_exports_nothing(app):
    client = signed_in(app, "ann")
    url = ask(client, "tie me")
    page = client.get(url).text
    client.post(f"{url}/pick", data={"csrf": csrf_of(page), "choice": "tie"})
    with app.state.sessions() as s:
        item = s.query(Item).filter(Item.prompt == "tie me").one()
        answer = s.query(Answer).join(Assignment).filter(Assignment.item_id == item.id).one()
        assert len(answer.ranking) == 1 and len(answer.ranking[0]) == 2
        assert not [r for r in campaigns.export_records(s, app.state.campaign_id) if r["prompt"] == "tie me"]


def test_generation_runs_off_the_request_thread(tmp_path):
    release, seen = threading.Event(), []

    def slow(name, prompt):
        seen.append(threading.current_thread().name)
        release.wait(10)
        return name
    app = create_app(f"sqlite:///{tmp_path / 'l.db'}", ADMIN,
                     playground=Playground({"a": "x", "b": "y"}, generate=slow))
    with app.state.sessions() as s:
        c = campaigns.create_campaign(s, "t", str(_rollouts(tmp_path)), overlap=1)
        token = campaigns.invite(s, c.id, "ann")
    client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    job = client.post("/api/play", json={"prompt": "hi"})
    assert job.status_code == 202                           # answered while generation is still blocked
    assert client.get(f"/api/play/{job.json()['job']}").json() == {"status": "pending", "prompt": "hi"}
    release.set()
    app.state.playground.jobs[job.json()["job"]].answers.result(timeout=10)
    assert seen and all(n.startswith("playground") for n in seen)
    view = client.get(f"/api/play/{job.json()['job']}").json()
    assert view["status"] == "done" and sorted(view["answers"]) == ["a", "b"]
    picked = client.post(f"/api/play/{job.json()['job']}/pick", json={"choice": "right"})
    assert picked.status_code == 201 and sorted(picked.json()["policies"]) == ["a", "b"]


def _rollouts(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"prompt": "p", "completions": ["a", "b"]}) + "\n")
    return path


def test_the_playground_needs_sign_in_csrf_and_its_owner(app):
    assert TestClient(app).get("/play").status_code == 401
    ann, bob = signed_in(app, "ann"), signed_in(app, "bob")
    r = ann.post("/play", data={"csrf": "0" * 64, "message": "x"}, follow_redirects=False)
    assert r.status_code == 403                                  # a forged form
    url = ask(ann, "mine")
    assert bob.get(url).status_code == 404                       # another person's comparison is not there
    page = ann.get(url).text
    assert bob.post(f"{url}/pick", data={"csrf": csrf_of(bob.get('/play').text), "choice": "left"}).status_code == 400
    assert ann.post(f"{url}/pick", data={"csrf": csrf_of(page), "choice": "best"}).status_code == 400


def test_without_policies_there_is_no_playground(tmp_path):
    app = create_app(f"sqlite:///{tmp_path / 'l.db'}", ADMIN)
    with app.state.sessions() as s:
        c = campaigns.create_campaign(s, "t", str(_rollouts(tmp_path)), overlap=1)
        token = campaigns.invite(s, c.id, "ann")
    r = TestClient(app, headers={"Authorization": f"Bearer {token}"}).get("/play")
    assert r.status_code == 404 and "label serve --policies" in r.text


def test_serve_takes_two_policies_for_the_playground():
    from rlhfkit.config import ConfigError
    from rlhfkit.feedback.config import LabelServeConfig
    LabelServeConfig(policies="sft=a,ppo=b").validate()
    for bad in ("sft=a", "a=x,b=y,c=z"):
        with pytest.raises(ConfigError, match="the playground compares two policies"):
            LabelServeConfig(policies=bad).validate()


def _app_with(tmp_path, generate):
    app = create_app(f"sqlite:///{tmp_path / 'g.db'}", ADMIN, playground=Playground({"a": "x", "b": "y"},
                                                                                  generate=generate))
    with app.state.sessions() as s:
        c = campaigns.create_campaign(s, "t", str(_rollouts(tmp_path)), overlap=1)
        app.state.campaign_id = c.id
        token = campaigns.invite(s, c.id, "ann")
    return app, TestClient(app, headers={"Authorization": f"Bearer {token}"})


def test_a_failed_generation_is_said_once_and_a_person_cannot_crowd_the_queue(tmp_path):
    def fails(name, prompt):
        if prompt == "too long":
            raise ValueError("the prompt leaves no room in the context")
        return "same answer"
    app, client = _app_with(tmp_path, fails)
    job = client.post("/api/play", json={"prompt": "too long"}).json()["job"]
    app.state.playground.jobs[job].answers.exception(timeout=10)
    view = client.get(f"/api/play/{job}").json()
    assert view["status"] == "failed" and "no room" in view["error"]
    assert client.get(f"/api/play/{job}").status_code == 404              # forgotten once said
    jobs = [client.post("/api/play", json={"prompt": f"p{i}"}) for i in range(5)]
    assert [r.status_code for r in jobs] == [202] * 4 + [429]


def test_the_same_answer_twice_is_stored_as_a_tie(tmp_path):
    app, client = _app_with(tmp_path, lambda name, prompt: "same answer")
    job = client.post("/api/play", json={"prompt": "twins"}).json()["job"]
    app.state.playground.jobs[job].answers.result(timeout=10)
    assert client.post(f"/api/play/{job}/pick", json={"choice": "left"}).status_code == 201
    with app.state.sessions() as s:
        answer = s.query(Answer).one()
        assert len(answer.ranking) == 1 and not campaigns.export_records(s, app.state.campaign_id)
