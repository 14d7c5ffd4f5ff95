"""Running the queue: pauses and limits, the leader lease, retention, periodic jobs and the jobs table's vacuum."""

from __future__ import annotations

from typing import Any

import psycopg

from .base import StoreBase


class OperationQueries(StoreBase):
    def set_job_paused(self, scope: str, name: str, paused: bool, conn: psycopg.Connection | None = None) -> None:
        with self.transaction(conn) as c:
            c.execute(self.q.set_job_paused, {"scope": scope, "name": name, "paused": paused})

    def set_job_limits(
        self,
        type: str,
        *,
        max_running: int | None,
        rate_limit: int | None,
        rate_period_seconds: float | None,
        conn: psycopg.Connection | None = None,
    ) -> None:
        params = {
            "type": type,
            "max_running": max_running,
            "rate_limit": rate_limit,
            "rate_period_seconds": rate_period_seconds,
        }
        with self.transaction(conn) as c:
            c.execute(self.q.set_job_limits, params)

    def list_job_controls(self, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.list_job_controls, {}, conn)

    def elect_leader(self, name: str, leader_id: str, ttl_seconds: float) -> bool:
        params = {"name": name, "leader_id": leader_id, "ttl_seconds": ttl_seconds}
        return bool(self._value(self.q.elect_leader, params, None))

    def resign_leader(self, name: str, leader_id: str) -> None:
        with self.transaction() as c:
            c.execute(self.q.resign_leader, {"name": name, "leader_id": leader_id})

    def get_leader(self, name: str, conn: psycopg.Connection | None = None) -> dict[str, Any] | None:
        rows = self._rows(self.q.get_leader, {"name": name}, conn)
        return rows[0] if rows else None

    def prune_finished_jobs(self, status: str, older_than_seconds: float, limit: int) -> int:
        params = {"status": status, "older_than_seconds": older_than_seconds, "limit": limit}
        return int(self._value(self.q.prune_finished_jobs, params, None) or 0)

    def archive_finished_jobs(self, older_than_seconds: float, limit: int, partition_seconds: float) -> int:
        params = {"older_than_seconds": older_than_seconds, "limit": limit, "partition_seconds": partition_seconds}
        return int(self._value(self.q.archive_finished_jobs, params, None) or 0)

    def drop_history_partitions(self, older_than_seconds: float) -> list[str]:
        rows = self._rows(self.q.drop_history_partitions, {"older_than_seconds": older_than_seconds}, None)
        return [row["name"] for row in rows]

    def analyze_job_history(self) -> None:
        with self.connection() as c:
            c.execute(self.q.analyze_job_history)

    def history_partitions(self, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.history_partitions, {}, conn)

    def upsert_periodic_job(self, schedule: dict[str, Any], conn: psycopg.Connection | None = None) -> dict[str, Any]:
        """`schedule` is `PeriodicJob.row()`: its payload is JSON text already."""
        row = self._write(self.q.upsert_periodic_job, schedule, conn)
        assert row is not None
        return row

    def delete_periodic_job(self, name: str, conn: psycopg.Connection | None = None) -> bool:
        return self._write(self.q.delete_periodic_job, {"name": name}, conn) is not None

    def set_periodic_job_enabled(
        self, name: str, enabled: bool, conn: psycopg.Connection | None = None
    ) -> dict[str, Any] | None:
        return self._write(self.q.set_periodic_job_enabled, {"name": name, "enabled": enabled}, conn)

    def list_periodic_schedules(self, limit: int, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.list_periodic_schedules, {"limit": limit}, conn)

    def list_periodic_jobs(self, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.list_periodic_jobs, {}, conn)

    def advance_periodic_job(self, name: str, prev_tick: Any, tick: Any, enqueue: bool) -> tuple[bool, int | None]:
        """Returns (advanced, job id): advanced is False when another scheduler handled the tick first."""
        params = {"name": name, "prev_tick": prev_tick, "tick": tick, "enqueue": enqueue}
        with self.transaction() as c:
            row = c.execute(self.q.advance_periodic_job, params).fetchone()
            return (row is not None, row[0] if row else None)

    def vacuum_jobs(self) -> None:
        """VACUUM (ANALYZE) of the jobs table; needs an autocommit connection (the pool's)."""
        with self.connection() as c:
            c.execute(self.q.vacuum_jobs)

    def expose_briefs(self, enabled: bool, conn: psycopg.Connection | None = None) -> None:
        """Turns end users' reads of their own briefs on or off, and asks PostgREST to reload its schema."""
        with self.connection(conn) as c:
            c.execute(self.q.expose_briefs, {"enabled": enabled})
            c.execute(self.q.reload_postgrest_schema)

    def set_fairness_weight(self, key: str, weight: int, conn: psycopg.Connection | None = None) -> dict[str, Any]:
        row = self._write(self.q.set_fairness_weight, {"key": key, "weight": weight}, conn)
        assert row is not None
        return row

    def delete_fairness_weight(self, key: str, conn: psycopg.Connection | None = None) -> bool:
        return self._write(self.q.delete_fairness_weight, {"key": key}, conn) is not None

    def list_fairness_weights(self, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.list_fairness_weights, {}, conn)
