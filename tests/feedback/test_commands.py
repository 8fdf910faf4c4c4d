"""`rlhfkit label ...` on bad input: one line on stderr, exit 2, and nothing written or created
(no output file, no database made by a mistyped --db). Run in process through `cli.main`."""
import importlib.util
import json
import sqlite3

import pytest

from rlhfkit.cli import main


@pytest.fixture()
def labels_db(tmp_path, capsys) -> str:
    """A database holding campaign 1 (two items, one invite), made as a user makes it."""
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text("".join(json.dumps({"prompt": f"p{i}", "completions": ["a", "b"]}) + "\n" for i in range(2)))
    db = f"sqlite:///{tmp_path / 'labels.db'}"
    assert main(["label", "campaign", "create", "--from", str(rollouts), "--db", db, "--invite", "ann",
                 "--base_url", "https://label.example.org"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["campaign"] == 1 and created["invites"]["ann"].startswith("https://label.example.org/join/")
    return db


def fails(argv: list[str], capsys) -> str:
    """The one line on stderr of a command that must exit 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def test_export_of_a_missing_campaign_is_an_error_and_writes_nothing(labels_db, tmp_path, capsys):
    out = tmp_path / "cmp.jsonl"
    assert fails(["label", "export", "--campaign", "7", "--db", labels_db, "--out", str(out)], capsys) == (
        f"rlhfkit label export: error: campaign: no campaign 7 in {labels_db} (campaigns there: 1)")
    assert not out.exists()
    assert main(["label", "export", "--campaign", "1", "--db", labels_db, "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 0 and out.read_text() == ""   # no answers yet


@pytest.mark.parametrize("command", [["export"], ["serve", "--port", "1"]])
def test_a_mistyped_db_is_an_error_and_creates_nothing(command, labels_db, tmp_path, capsys):
    typo = tmp_path / "lables.db"
    out = tmp_path / "cmp.jsonl"
    argv = ["label", *command, "--db", f"sqlite:///{typo}"] + (["--out", str(out)] if command == ["export"] else [])
    assert fails(argv, capsys) == (f"rlhfkit label {command[0]}: error: db: {typo} does not exist "
                                   "(`rlhfkit label campaign create` makes one)")
    assert not list(tmp_path.glob("lables*")) and not out.exists()


def test_a_database_of_something_else_is_refused(tmp_path, capsys):
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table t (x)").connection.commit()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database at all, just some notes that are long enough to be a header" * 3)
    assert fails(["label", "serve", "--db", f"sqlite:///{other}"], capsys) == (
        f"rlhfkit label serve: error: db: sqlite:///{other} holds no labeling campaigns (no rlhfkit tables)")
    assert fails(["label", "export", "--db", f"sqlite:///{notes}", "--out", str(tmp_path / "o.jsonl")], capsys) == (
        f"rlhfkit label export: error: db: cannot read sqlite:///{notes}: file is not a database")
    assert sqlite3.connect(other).execute("select name from sqlite_master").fetchall() == [("t",)]   # untouched


def test_a_campaign_that_fails_leaves_no_new_database(tmp_path, capsys):
    bad = tmp_path / "r.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "completions": ["only one"]}) + "\n")
    err = fails(["label", "campaign", "create", "--from", str(bad), "--db", f"sqlite:///{tmp_path / 'new.db'}"], capsys)
    assert err.startswith(f"rlhfkit label campaign create: error: {bad}:1:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]


@pytest.mark.parametrize("url", ["label.example.org", "ftp://label.example.org", "https://label.example.org/app",
                                 "https://"])
def test_a_base_url_that_is_not_scheme_and_host_is_refused(url, capsys):
    assert fails(["label", "serve", "--base_url", url], capsys) == (
        f"rlhfkit label serve: config error: base_url must be http(s)://HOST[:PORT], got {url!r}")


def test_a_db_url_that_names_no_file_is_refused(capsys):
    for url in ("sqlite:///", "sqlite:///:memory:", "mysql://h/db"):
        assert fails(["label", "export", "--db", url], capsys) == (
            f"rlhfkit label export: config error: db must be sqlite:///FILE or a postgresql:// URL, got {url!r}")


@pytest.mark.skipif(importlib.util.find_spec("psycopg") is not None, reason="psycopg is installed")
def test_postgresql_without_its_driver_says_what_to_install_and_hides_the_password(capsys):
    assert fails(["label", "export", "--db", "postgresql://ann:secret@127.0.0.1:1/labels"], capsys) == (
        "rlhfkit label export: error: db: postgresql://ann:***@127.0.0.1:1/labels needs psycopg "
        "(pip install 'rlhfkit[postgres]')")
