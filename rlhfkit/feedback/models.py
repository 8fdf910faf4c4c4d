"""The labeling app's tables, in one place (SQLAlchemy 2 typed ORM).

    Campaign  1..n  Item  1..n  Candidate          what is to be ranked
    Campaign  1..n  Labeler                        who ranks (joined by an invite token, stored hashed)
    Item x Labeler -> Assignment (display order)   who sees what, candidates in a recorded random order
    Assignment 1..1 Answer                         the ranking; unique per assignment, so a retried
                                                   submit can never store an answer twice
Meta holds the schema version so a later change can migrate.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SCHEMA_VERSION = 1


def now() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Meta(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class Campaign(Base):
    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    overlap: Mapped[int] = mapped_column(Integer, default=1)       # labelers per item
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    items: Mapped[list[Item]] = relationship(back_populates="campaign", order_by="Item.id")


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (Index("ix_items_open", "campaign_id", "assigned"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    prompt: Mapped[str] = mapped_column(Text)
    assigned: Mapped[int] = mapped_column(Integer, default=0)      # labelers given this item so far
    source: Mapped[str] = mapped_column(String(300), default="")  # file:line it came from
    campaign: Mapped[Campaign] = relationship(back_populates="items")
    candidates: Mapped[list[Candidate]] = relationship(order_by="Candidate.index")


class Candidate(Base):
    __tablename__ = "candidates"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)                    # position in the source record
    text: Mapped[str] = mapped_column(Text)


class Labeler(Base):
    __tablename__ = "labelers"
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("item_id", "labeler_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    labeler_id: Mapped[int] = mapped_column(ForeignKey("labelers.id"), index=True)
    positions: Mapped[list[int]] = mapped_column(JSON)              # candidate ids in display order
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    item: Mapped[Item] = relationship()
    answer: Mapped[Answer | None] = relationship(back_populates="assignment")


class Answer(Base):
    __tablename__ = "answers"
    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), unique=True)
    ranking: Mapped[list[list[int]]] = mapped_column(JSON)          # groups of candidate ids, best first; a group = a tie
    cant_tell: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    assignment: Mapped[Assignment] = relationship(back_populates="answer")
