"""Briefs: inserting one, reading one or a page of them with their steps, cancelling and retrying."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypedDict, Unpack
from uuid import UUID

import psycopg

from ..job import JobRecord
from .base import StoreBase, filter_params


class BriefFilters(TypedDict, total=False):
    """What list_briefs() narrows the briefs to; a filter not given, or None, does not narrow."""

    user_id: str | None
    status: str | None
    before: datetime | None  # created before this: the page after the one that ended there


class BriefQueries(StoreBase):
    def insert_brief(self, brief: dict[str, Any], conn: psycopg.Connection | None = None) -> UUID:
        return self._value(self.q.insert_brief, brief, conn)

    def get_brief(self, brief_id: UUID, conn: psycopg.Connection | None = None) -> dict[str, Any] | None:
        rows = self._rows(self.q.get_brief, {"id": brief_id}, conn)
        return rows[0] if rows else None

    def existing_brief_ids(self, brief_ids: Sequence[UUID], conn: psycopg.Connection | None = None) -> set[UUID]:
        """Which of `brief_ids` are briefs."""
        return {r["id"] for r in self._rows(self.q.existing_brief_ids, {"ids": list(brief_ids)}, conn)}

    def brief_jobs(self, brief_id: UUID, conn: psycopg.Connection | None = None) -> list[JobRecord]:
        return [JobRecord.from_row(r) for r in self._rows(self.q.brief_jobs, {"id": brief_id}, conn)]

    def list_brief_steps(self, brief_ids: Sequence[UUID], conn: psycopg.Connection | None = None) -> list[JobRecord]:
        """The jobs of every brief in `brief_ids`, by brief and creation order."""
        return [JobRecord.from_row(r) for r in self._rows(self.q.list_brief_steps, {"ids": list(brief_ids)}, conn)]

    def list_briefs(
        self, *, limit: int = 50, conn: psycopg.Connection | None = None, **filters: Unpack[BriefFilters]
    ) -> list[dict[str, Any]]:
        """Briefs newest first."""
        params = {**filter_params(BriefFilters, filters), "limit": limit}
        return self._rows(self.q.list_briefs, params, conn)

    def cancel_brief(self, brief_id: UUID, reason: str, conn: psycopg.Connection | None = None) -> int:
        return int(self._value(self.q.cancel_brief, {"id": brief_id, "reason": reason}, conn))

    def retry_brief(self, brief_id: UUID, conn: psycopg.Connection | None = None) -> int:
        return int(self._value(self.q.retry_brief, {"id": brief_id}, conn))
