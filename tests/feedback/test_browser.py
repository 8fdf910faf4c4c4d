"""A person's session in a real browser (Debian's Chromium driven by Playwright): open the invite
link, rank three items with the mouse and with keys, then train a reward model on the export.
Skipped where Chromium is not installed (`.ci/run` installs it)."""
import contextlib
import json
import os
import shutil
import subprocess
import sys

import httpx
import pytest
from sqlalchemy.orm import Session

from rlhfkit.feedback import campaigns
from rlhfkit.feedback.db import init_schema, make_engine

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


@contextlib.contextmanager
def chromium_page(sync_api, height: int, console: list[str]):
    """A page of a fresh Chromium, its console messages collected into `console`."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": height})
        page.on("console", lambda m: console.append(m.text))
        yield page
        browser.close()


def campaign(tmp_path, rows: list[dict]) -> tuple[str, int, str]:
    """A new database holding a campaign of `rows` and one invited person: (db URL, campaign id, token)."""
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    db = f"sqlite:///{tmp_path / 'labels.db'}"
    engine = make_engine(db)
    init_schema(engine)
    with Session(engine) as s:
        campaign_id = campaigns.create_campaign(s, "browser", str(rollouts), overlap=1).id
        return db, campaign_id, campaigns.invite(s, campaign_id, "person")


def test_rank_three_items_in_a_browser_then_train_on_the_export(tmp_path, server_for, tiny_model_dir):
    sync_api = pytest.importorskip("playwright.sync_api")
    db, campaign_id, token = campaign(tmp_path, [{"prompt": f"post {i}: we ordered pizza. tl;dr:", "completions": [
        f"we ordered pizza {i}", "pizza", "<b>not bold</b>"]} for i in range(3)])
    server = server_for(db)
    console = []
    with chromium_page(sync_api, 700, console) as page:
        page.goto(f"{server.url}/join/{token}")
        assert "1 of 3" in page.text_content("#progress")
        assert page.eval_on_selector(".cand", "e => getComputedStyle(e).borderTopWidth") == "2px"   # the style ran
        assert page.locator(".cand .text", has_text="<b>not bold</b>").count() == 1     # shown as text
        if os.environ.get("RLHFKIT_SCREENSHOT"):
            page.screenshot(path=os.environ["RLHFKIT_SCREENSHOT"])
        # item 1: the mouse, best to worst, then the Submit button
        for key in ("2", "3", "1"):
            page.click(f"#cand-{key}")
        assert json.loads(page.input_value("#ranking")) and page.locator(".cand.picked").count() == 3
        page.click("#submit")
        page.wait_for_selector("text=2 of 3")
        # item 2: keys, Enter submits
        for key in ("3", "1", "2", "Enter"):
            page.keyboard.press(key)
        page.wait_for_selector("text=3 of 3")
        # item 3: keys with a tie (t), then undo it (u) and answer again
        for key in ("1", "t", "2", "3", "Enter"):
            page.keyboard.press(key)
        page.wait_for_selector("text=all done")
        page.click("text=Undo last answer")
        page.wait_for_selector("text=3 of 3")
        for key in ("1", "2", "3", "Enter"):
            page.keyboard.press(key)
        page.wait_for_selector("text=all done")
    assert not [m for m in console if "Content Security Policy" in m], console     # the page's own code is allowed
    export = httpx.get(f"{server.url}/admin/campaigns/{campaign_id}/export", headers={"Authorization": "Bearer adm"}).text
    records = [json.loads(line) for line in export.splitlines()]
    assert len(records) == 3 and all(len(r["completions"]) == 3 and r["labeler"] == "person" for r in records)
    (tmp_path / "export.jsonl").write_text(export)
    proc = subprocess.run([sys.executable, "-m", "rlhfkit.cli", "rm", "--model", str(tiny_model_dir), "--data",
                           str(tmp_path / "export.jsonl"), "--out", str(tmp_path / "rm"), "--train.epochs", "3",
                           "--train.batch_size", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len((tmp_path / "rm" / "log.jsonl").read_text().splitlines()) == 9      # 3 rankings x 3 epochs


def test_the_playground_in_a_browser(tmp_path, server_for, tiny_model_dir):
    """Type a prompt, both policies answer (the page reloads itself meanwhile), pick the left one,
    continue the conversation; both picks are in the export. RLHFKIT_PLAY_POLICIES (a=DIR,b=DIR)
    shows other policies, for the README's screenshot (RLHFKIT_PLAY_SCREENSHOT)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    db, campaign_id, token = campaign(tmp_path, [{"prompt": "p", "completions": ["a", "b"]}])
    policies = os.environ.get("RLHFKIT_PLAY_POLICIES", f"sft={tiny_model_dir},ppo={tiny_model_dir}")
    server = server_for(db, "--policies", policies, "--play_max_new_tokens", "48")
    prompt = os.environ.get("RLHFKIT_PLAY_PROMPT", "POST: our dog <b>ran</b> away. TL;DR:")
    console = []
    with chromium_page(sync_api, 620, console) as page:
        page.goto(f"{server.url}/join/{token}")
        page.goto(f"{server.url}/play")
        page.fill("#message", prompt)
        page.click("#send")
        page.wait_for_selector("#pick-left", timeout=60_000)     # after the reloads while the answers are written
        assert page.text_content("#prompt") == prompt            # the markup in it shown as text
        if os.environ.get("RLHFKIT_PLAY_SCREENSHOT"):
            page.screenshot(path=os.environ["RLHFKIT_PLAY_SCREENSHOT"])
        page.click("#pick-left")
        page.wait_for_selector("text=left was better")
        page.fill("#message", "And then?")
        page.click("#send")
        page.wait_for_selector("#pick-right", timeout=60_000)
        page.click("#pick-right")
        page.wait_for_selector("text=right was better")
    assert not [m for m in console if "Content Security Policy" in m], console
    export = httpx.get(f"{server.url}/admin/campaigns/{campaign_id}/export", headers={"Authorization": "Bearer adm"}).text
    records = [json.loads(line) for line in export.splitlines()]
    assert [r["prompt"].endswith("And then?") for r in records] == [False, True]
    assert all(len(r["completions"]) == 2 and r["labeler"] == "person" for r in records)
