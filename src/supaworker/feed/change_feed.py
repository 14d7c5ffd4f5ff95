"""The change feed: watches the jobs table cheaply and fans debounced change events out to SSE clients.

Why no trigger on updates: a NOTIFY on every claim and completion would make each of those transactions
take PostgreSQL's global notify lock at commit. Instead the feed LISTENs only on the insert channel the
workers already use (so new jobs show at once), and otherwise samples about once a second with bounded,
indexed reads: jobs finished since its last look (by `completed_at`), running jobs, the head of the
queue, recent failures, per-status counts capped at `count_cap`, and the live workers. One sample serves
every connected client, the metrics and the throughput chart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from ..listener import Listener
from ..retry import DATABASE_ERRORS, Backoff
from ..sql import channel_name
from ..states import JobStatus
from ..store import Store

log = logging.getLogger("supaworker.feed")

POLL_INTERVAL_SECONDS = 1.0
DEBOUNCE_SECONDS = 0.2  # a burst of inserts or API writes becomes one sample and one event
# completed_at is its transaction's start time: re-read this much before the watermark so a transaction
# that committed a little after it started is not missed (rows already seen are skipped).
LATE_COMMIT_SECONDS = 1.0
FINISHED_BATCH = 5000
MAX_FINISHED_PER_SAMPLE = 50_000
SERIES_BUCKET_SECONDS = 5
SERIES_BUCKETS = 60  # five minutes of history for the chart
PENDING_HEAD = 20
RUNNING_LIMIT = 100
FAILURES_LIMIT = 20
EVENT_JOBS_LIMIT = 200
SUBSCRIBER_QUEUE = 64


@dataclass
class Bucket:
    """Jobs finished during one slice of the chart."""

    start: float  # epoch seconds, database clock
    completed: int = 0
    failed: int = 0  # failed and cancelled
    duration_sum: float = 0.0
    latency_sum: float = 0.0
    timed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "completed": self.completed,
            "failed": self.failed,
            "avg_duration_seconds": self.duration_sum / self.timed if self.timed else None,
            "avg_queue_latency_seconds": self.latency_sum / self.timed if self.timed else None,
        }


@dataclass
class Snapshot:
    """What the dashboard and the metrics show, as of one sample."""

    taken_at: datetime
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # status -> type -> count
    capped: frozenset[str] = frozenset()  # statuses that have at least the counted number
    pending_head: list[dict[str, Any]] = field(default_factory=list)
    oldest_pending_age_seconds: float | None = None
    running: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    max_job_id: int = 0

    @property
    def totals(self) -> dict[str, int]:
        return {s.value: sum(self.counts.get(s.value, {}).values()) for s in JobStatus}

    @property
    def types(self) -> list[str]:
        return sorted({t for by_type in self.counts.values() for t in by_type})

    def fingerprint(self) -> tuple[Any, ...]:
        return (
            tuple(sorted((s, t, n) for s, by_type in self.counts.items() for t, n in by_type.items())),
            tuple((r["id"], r["attempts"], r.get("progress"), r.get("progress_message")) for r in self.running),
            tuple((r["id"], r["completed_at"]) for r in self.failures),
            tuple(r["id"] for r in self.pending_head),
            tuple(w["worker_id"] for w in self.workers),
            self.max_job_id,
        )


@dataclass
class _Sample:
    snapshot: Snapshot
    finished: list[dict[str, Any]]
    backfill: list[dict[str, Any]]


class ChangeFeed:
    """Samples the jobs table, keeps the latest Snapshot and the chart series, and publishes changes."""

    def __init__(
        self,
        store: Store,
        *,
        listen_conninfo: str | None,
        count_cap: int,
        poll_interval_seconds: float = POLL_INTERVAL_SECONDS,
        sessions_store: Store | None = None,
    ) -> None:
        """`store` takes the samples (a replica will do); `sessions_store` (default `store`) lists the live
        workers from the server's sessions, which only the server the workers connect to knows of."""
        self.store = store
        self.sessions_store = sessions_store or store
        self.listen_conninfo = listen_conninfo
        self.count_cap = count_cap
        self.poll_interval_seconds = poll_interval_seconds
        self.snapshot: Snapshot | None = None
        self.seq = 0
        self._series: deque[Bucket] = deque(maxlen=SERIES_BUCKETS)
        self._watermark: datetime | None = None
        self._seen: dict[tuple[int, datetime], None] = {}
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._finished_listeners: list[Callable[[list[dict[str, Any]]], None]] = []
        self._poke = asyncio.Event()
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name="feed-sampler")]
        if self.listen_conninfo:
            # NOTIFY of new jobs pokes the sampler; LISTEN failing only means polling (said at INFO).
            listener = Listener(
                self.listen_conninfo,
                [channel_name(self.store.q.schema)],
                lambda _channel, _payload: self._poke.set(),
                level=logging.INFO,
            )
            self._tasks.append(asyncio.create_task(listener.run(), name="feed-listener"))

    async def wait_ready(self, timeout: float) -> bool:
        """Waits for the first sample; False if it did not come in time (the database is unreachable)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        return self._ready.is_set()

    async def close(self) -> None:
        """Ends every open event stream, then stops sampling."""
        self._closed = True
        for queue in list(self._subscribers):
            self._offer(queue, None)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def poke(self) -> None:
        """Asks for a sample soon (after a write through the API, or a NOTIFY)."""
        self._poke.set()

    def on_finished(self, listener: Callable[[list[dict[str, Any]]], None]) -> None:
        """Calls `listener` with the rows of jobs that finished while the feed was running."""
        self._finished_listeners.append(listener)

    # -- subscribers ---------------------------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A queue of events for one client; None means the feed closed."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE)
        if self._closed:
            queue.put_nowait(None)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._subscribers.discard(queue)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def _offer(self, queue: asyncio.Queue[dict[str, Any] | None], event: dict[str, Any] | None) -> None:
        if queue.full():
            # A client that does not keep up gets told to reload its view rather than a growing backlog.
            while not queue.empty():
                queue.get_nowait()
            if event is not None:
                event = {**event, "resync": True}
        queue.put_nowait(event)

    def series(self) -> list[Bucket]:
        """The chart's buckets, oldest first, with empty buckets filled in up to the last sample."""
        if self.snapshot is None:
            return []
        end = _bucket_start(self.snapshot.taken_at.timestamp())
        by_start = {b.start: b for b in self._series}
        starts = [end - SERIES_BUCKET_SECONDS * i for i in range(SERIES_BUCKETS - 1, -1, -1)]
        return [by_start.get(s, Bucket(s)) for s in starts]

    def hello(self) -> dict[str, Any]:
        """The first event a new client gets: where things stand."""
        snapshot = self.snapshot
        return {
            "seq": self.seq,
            "totals": snapshot.totals if snapshot else {},
            "capped": sorted(snapshot.capped) if snapshot else [],
        }

    # -- sampling ------------------------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = Backoff()
        while True:
            try:
                sample = await asyncio.to_thread(self._sample)
                backoff.reset()
            except DATABASE_ERRORS as exc:
                delay = backoff.next()
                log.warning("sampling jobs failed, retrying", extra={"error": str(exc).strip(), "retry_in": delay})
                await asyncio.sleep(delay)
                continue
            self._publish(sample)
            self._ready.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval_seconds):
                    await self._poke.wait()
            if self._poke.is_set():
                await asyncio.sleep(DEBOUNCE_SECONDS)
            self._poke.clear()

    def _sample(self) -> _Sample:
        """Runs the bounded reads on one connection (in a worker thread)."""
        with self.store.connection() as conn:
            now = self.store.database_now(conn)
            backfill: list[dict[str, Any]] = []
            if self._watermark is None:
                # Fill the chart with the recent past; these jobs are not counted as finished now.
                since = now - timedelta(seconds=SERIES_BUCKET_SECONDS * SERIES_BUCKETS)
                backfill = self._read_finished(since, conn)
                finished: list[dict[str, Any]] = []
            else:
                finished = self._read_finished(self._watermark - timedelta(seconds=LATE_COMMIT_SECONDS), conn)
            counts: dict[str, dict[str, int]] = {}
            for row in self.store.count_jobs_capped(self.count_cap, conn):
                counts.setdefault(row["status"], {})[row["type"]] = int(row["count"])
            capped = frozenset(s for s, by_type in counts.items() if sum(by_type.values()) >= self.count_cap)
            head = self.store.list_pending_head(PENDING_HEAD, self.count_cap, conn)
            running = self.store.list_running_jobs(RUNNING_LIMIT, conn)
            workers = _merge_workers(self._live_workers(conn), running)
            snapshot = Snapshot(
                taken_at=now,
                counts=counts,
                capped=capped,
                pending_head=head,
                oldest_pending_age_seconds=head[0]["oldest_age_seconds"] if head else None,
                running=running,
                failures=self.store.list_recent_failures(FAILURES_LIMIT, conn),
                workers=workers,
                max_job_id=self.store.max_job_id(conn),
            )
            if self._watermark is None:
                self._watermark = max([now, *(r["completed_at"] for r in backfill)])
            return _Sample(snapshot, finished, backfill)

    def _live_workers(self, conn: psycopg.Connection) -> list[dict[str, Any]]:
        # A replica's pg_stat_activity lists the replica's own sessions, not the workers'.
        if self.sessions_store is self.store:
            return self.store.list_live_workers(conn)
        return self.sessions_store.list_live_workers()

    def _read_finished(self, since: datetime, conn: psycopg.Connection) -> list[dict[str, Any]]:
        """Rows finished after `since` that this feed has not seen yet, in finishing order."""
        fresh: list[dict[str, Any]] = []
        while len(fresh) < MAX_FINISHED_PER_SAMPLE:
            limit = len(self._seen) + FINISHED_BATCH
            rows = self.store.list_finished_jobs(since, limit, conn)
            for row in rows:
                key = (row["id"], row["completed_at"])
                if key not in self._seen:
                    self._seen[key] = None
                    fresh.append(row)
            if rows:
                newest = rows[-1]["completed_at"]
                if self._watermark is None or newest > self._watermark:
                    self._watermark = newest
            if len(rows) < limit:
                break
            since = rows[-1]["completed_at"] - timedelta(seconds=LATE_COMMIT_SECONDS)
        if self._watermark is not None:
            horizon = self._watermark - timedelta(seconds=LATE_COMMIT_SECONDS)
            self._seen = {k: None for k in self._seen if k[1] > horizon}
        return fresh

    def _publish(self, sample: _Sample) -> None:
        previous = self.snapshot
        self.snapshot = sample.snapshot
        for row in (*sample.backfill, *sample.finished):
            self._add_to_series(row)
        if sample.finished:
            for listener in self._finished_listeners:
                try:
                    listener(sample.finished)
                except Exception:
                    log.exception("finished-jobs listener failed")
        if previous is not None and not sample.finished and previous.fingerprint() == sample.snapshot.fingerprint():
            return
        self.seq += 1
        event = self._event(previous, sample)
        for queue in list(self._subscribers):
            self._offer(queue, event)

    def _event(self, previous: Snapshot | None, sample: _Sample) -> dict[str, Any]:
        snapshot = sample.snapshot
        jobs = [_job_brief(r) for r in sample.finished]
        before = {r["id"]: r["attempts"] for r in previous.running} if previous else {}
        jobs += [_job_brief(r, "processing") for r in snapshot.running if before.get(r["id"]) != r["attempts"]]
        created = snapshot.max_job_id - previous.max_job_id if previous else 0
        briefs = sorted({str(j["brief_id"]) for j in jobs if j["brief_id"] is not None})
        return {
            "seq": self.seq,
            "at": snapshot.taken_at.isoformat(),
            "totals": snapshot.totals,
            "capped": sorted(snapshot.capped),
            "created": max(created, 0),
            "jobs": jobs[:EVENT_JOBS_LIMIT],
            "truncated": len(jobs) > EVENT_JOBS_LIMIT,
            "briefs": briefs,
            # Where each running job stands, so open pages move their progress bars without a re-render.
            "progress": [
                {"id": r["id"], "progress": r.get("progress"), "message": r.get("progress_message")}
                for r in snapshot.running
                if r.get("progress") is not None
            ],
        }

    def _add_to_series(self, row: dict[str, Any]) -> None:
        start = _bucket_start(row["completed_at"].timestamp())
        bucket = next((b for b in reversed(self._series) if b.start == start), None)
        if bucket is None:
            if self._series and start < self._series[-1].start:
                return  # older than the chart's newest bucket: a late commit; the count still moves on
            bucket = Bucket(start)
            self._series.append(bucket)
        if row["status"] == JobStatus.COMPLETED:
            bucket.completed += 1
        else:
            bucket.failed += 1
        if row["duration_seconds"] is not None and row["queue_latency_seconds"] is not None:
            bucket.duration_sum += row["duration_seconds"]
            bucket.latency_sum += max(row["queue_latency_seconds"], 0.0)
            bucket.timed += 1


def _bucket_start(epoch: float) -> float:
    return float(int(epoch // SERIES_BUCKET_SECONDS) * SERIES_BUCKET_SECONDS)


def _job_brief(row: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    return {
        "id": row["id"],
        "type": row["type"],
        "status": status or row["status"],
        "brief_id": str(row["brief_id"]) if row.get("brief_id") is not None else None,
    }


def _merge_workers(live: Iterable[dict[str, Any]], running: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Workers with an open connection, plus any that own a running job (seen through a pooler)."""
    workers: dict[str, dict[str, Any]] = {
        w["worker_id"]: {**w, "running": 0, "connected": True} for w in live if w["worker_id"]
    }
    for job in running:
        worker = workers.setdefault(
            job["worker_id"], {"worker_id": job["worker_id"], "connected_since": None, "connections": 0,
                               "running": 0, "connected": False},
        )  # fmt: skip
        worker["running"] += 1
    return sorted(workers.values(), key=lambda w: w["worker_id"])
