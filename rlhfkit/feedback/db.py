"""Database setup: SQLite by default (WAL, a file under the run directory), PostgreSQL by URL.

The schema is created on first start and its version recorded in `meta`; a database written by
a newer rlhfkit is refused rather than misread.
"""
from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from rlhfkit.feedback.models import SCHEMA_VERSION, Base, Meta


class SchemaError(RuntimeError):
    pass


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

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
    return create_engine(url, pool_pre_ping=True)


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
