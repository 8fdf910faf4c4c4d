"""Database setup: SQLite by default (WAL, a file under the run directory), PostgreSQL by URL.

The schema is created when a database is made (`campaign create`, or `serve --create`) and its
version recorded in `meta`; a database written by a newer rlhfkit is refused rather than misread,
and so is a --db that names no labeling database (a typo must not quietly start an empty one).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, make_url, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from rlhfkit.errors import InputError
from rlhfkit.feedback.models import SCHEMA_VERSION, Base, Meta


class SchemaError(InputError):
    pass


def make_engine(url: str, pool_size: int = 5) -> Engine:
    """`pool_size` connections and no overflow: the server admits no more requests at once than
    that (rlhfkit.feedback.middleware.Admission), so none waits for a connection."""
    pool = {"pool_size": pool_size, "max_overflow": 0}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record) -> None:     # WAL: readers never wait for the writer
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
        return engine
    if url.startswith("postgresql://"):     # psycopg 3 (the `postgres` extra), not SQLAlchemy's psycopg2 default
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, **pool)


def shown(url: str) -> str:
    """The URL as messages may show it: no password."""
    return make_url(url).render_as_string(hide_password=True)


def sqlite_file(url: str) -> Path | None:
    """The file a sqlite:/// URL names (None for other databases and for :memory:)."""
    u = make_url(url)
    return Path(u.database) if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:") else None


def open_database(url: str, create: bool, pool_size: int = 5) -> Engine:
    """The engine on a labeling database, its schema checked. With `create` a new one is made
    (schema and, for SQLite, the file's directory); without it a SQLite file that does not exist,
    or a database without the labeling schema, is refused."""
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        if not create:
            raise InputError(f"db: {path} does not exist (`rlhfkit label campaign create` makes one)")
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = make_engine(url, pool_size)
    except ModuleNotFoundError as e:
        raise InputError(f"db: {shown(url)} needs {e.name} (pip install 'rlhfkit[postgres]')") from None
    try:
        found = inspect(engine).has_table(Meta.__tablename__)
    except DBAPIError as e:
        raise InputError(f"db: cannot read {shown(url)}: {e.orig}") from None
    if not found and not create:
        raise InputError(f"db: {shown(url)} holds no labeling campaigns (no rlhfkit tables)")
    init_schema(engine)
    return engine


def init_schema(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as s, s.begin():
        row = s.get(Meta, "schema_version")
        if row is None:
            s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
        elif int(row.value) > SCHEMA_VERSION:
            raise SchemaError(f"the database has schema version {row.value}; this rlhfkit knows {SCHEMA_VERSION}")


def schema_version(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.scalar(select(Meta.value).where(Meta.key == "schema_version")))


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def sessions(factory: sessionmaker) -> Iterator[Session]:
    with factory() as s:
        yield s
