"""What limits, dependencies and unique keys promise with several worker processes at once, counted from what
the handlers themselves record (one line per start and per end, with the job, its attempt and the time) and
from the rows, never from how long something took.

The worker processes import this module for its handlers (`--import`); they register only there, where
$CONCURRENCY_RECORDS names the file they append to.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import ConnectionPool

import supaworker
from supaworker.store import Store
from tests.conftest import SCHEMA

from .conftest import Workers, count_by_status, unfinished, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]

THIS_MODULE = "tests.acceptance.test_concurrency_guarantees"
_fd: int | None = None


def _record(kind: str, job: supaworker.Job) -> None:
    global _fd
    if _fd is None:
        _fd = os.open(os.environ["CONCURRENCY_RECORDS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_fd, f"{kind} {job.id} {job.attempt} {job.type} {os.getpid()} {time.time():.6f}\n".encode())


async def _recorded(job: supaworker.Job) -> dict[str, int]:
    _record("S", job)
    try:
        payload = job.payload if isinstance(job.payload, dict) else {}
        if payload.get("sleep"):
            await asyncio.sleep(payload["sleep"])
        if payload.get("fail") or (payload.get("fail_once") and job.attempt == 1):
            raise RuntimeError(f"job {job.id} fails on attempt {job.attempt}")
    finally:
        _record("E", job)
    return {"id": job.id}


if os.environ.get("CONCURRENCY_RECORDS"):
    for _type in ("capped", "free", "step"):
        supaworker.handler(_type)(_recorded)


class Record:
    def __init__(self, line: str) -> None:
        kind, job_id, attempt, type_, pid, at = line.split()
        self.kind, self.job_id, self.attempt, self.type = kind, int(job_id), int(attempt), type_
        self.pid, self.at = int(pid), float(at)


class Recorded(Workers):
    """Worker processes on the test's own database whose handlers record their starts and ends."""

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        return super().start("--import", THIS_MODULE, *args, CONCURRENCY_RECORDS=str(self.side_effects), **env)

    def records(self) -> list[Record]:
        lines = self.side_effects.read_text().splitlines() if self.side_effects.exists() else []
        return sorted((Record(line) for line in lines), key=lambda r: (r.at, r.kind == "S"))


@pytest.fixture
def direct_store(db: str) -> Iterator[Store]:
    with ConnectionPool(db, min_size=1, max_size=4, kwargs={"autocommit": True}, open=True) as pool:
        yield Store(pool, SCHEMA)


@pytest.fixture
def recorded(db: str, tmp_path: Path) -> Iterator[Recorded]:
    group = Recorded(db, tmp_path / "records.txt", tmp_path)
    yield group
    group.kill_all()


def running_at_each_start(records: list[Record], type_: str) -> dict[tuple[int, int], int]:
    """For each start of the type, how many of its handlers ran at that moment (the starting one included),
    over every process."""
    running, at_start = 0, {}
    for r in records:
        if r.type != type_:
            continue
        running += 1 if r.kind == "S" else -1
        if r.kind == "S":
            at_start[(r.job_id, r.attempt)] = running
    return at_start


def claimed_at(db: str, ids: list[int]) -> dict[int, float]:
    with psycopg.connect(db) as c:
        rows = c.execute("SELECT id, started_at FROM supaworker.jobs WHERE id = ANY(%s)", (ids,)).fetchall()
    return {job_id: started.timestamp() for job_id, started in rows if started is not None}


def completed_count(db: str) -> int:
    return count_by_status(db).get("completed", 0)


def test_max_running_holds_across_processes_with_a_full_prefetch_and_follows_a_lowered_limit(
    db: str, direct_store: Store, recorded: Recorded
) -> None:
    # Four processes that each claim up to 500 jobs ahead: the claimed-ahead jobs count as running, so the
    # handlers of the limited type never run more than the limit between them, while the free type runs wide.
    capped = supaworker.create_jobs([{"type": "capped", "payload": {"sleep": 0.01}}] * 600, store=direct_store)
    supaworker.create_jobs([{"type": "free", "payload": {"sleep": 0.01}}] * 300, store=direct_store)
    supaworker.set_limits("capped", max_running=4, store=direct_store)
    recorded.start("--processes", "4", "--concurrency", "8", "--prefetch", "500")
    wait_for(lambda: completed_count(db) >= 300, what="a third of the jobs to finish")
    supaworker.set_limits("capped", max_running=2, store=direct_store)
    lowered = time.time()  # the new limit has committed
    wait_for(lambda: unfinished(db) == 0, what="the queue to drain")
    assert recorded.stop_all() == [0]

    assert count_by_status(db) == {"completed": 900}
    records = recorded.records()
    at_start = running_at_each_start(records, "capped")
    assert len(at_start) == 600
    assert max(at_start.values()) <= 4
    # A job claimed after the lower limit committed started only with fewer than 2 others running.
    claimed = claimed_at(db, capped)
    later = {key: n for key, n in at_start.items() if claimed[key[0]] > lowered}
    assert later, "no capped job was claimed after the limit was lowered"
    assert max(later.values()) <= 2
    assert max(running_at_each_start(records, "free").values()) > 4  # the free type was not held to the limit


def test_a_sigkilled_worker_holding_every_limited_slot_frees_them_within_its_lease(
    db: str, direct_store: Store, recorded: Recorded
) -> None:
    ids = supaworker.create_jobs([{"type": "capped", "payload": {"sleep": 0.3}}] * 40, store=direct_store)
    supaworker.set_limits("capped", max_running=4, store=direct_store)
    env = {"SUPAWORKER_RESCUE_INTERVAL_SECONDS": "0.5", "SUPAWORKER_RETRY_BASE_SECONDS": "0"}
    victim = recorded.start("--concurrency", "4", "--lease-seconds", "2", **env)

    def victim_runs_four() -> bool:
        return sum(1 for r in recorded.records() if r.kind == "S" and r.pid == victim.pid) >= 4

    wait_for(victim_runs_four, what="the victim to run four jobs")
    for _ in range(2):
        recorded.start("--concurrency", "4", "--lease-seconds", "2", **env)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.time()
    # The dead worker's jobs hold the limit until their lease runs out; then the others take every job.
    wait_for(lambda: unfinished(db) == 0, what="rescue and drain")
    recorded.stop_all()

    assert count_by_status(db) == {"completed": 40}
    records = recorded.records()
    ended = {(r.job_id, r.attempt) for r in records if r.kind == "E"}
    # The victim's handlers that never recorded an end stopped when it was killed.
    cut = [Record(f"E {r.job_id} {r.attempt} {r.type} {r.pid} {killed_at}") for r in records if r.kind == "S"]
    cut = [r for r in cut if (r.job_id, r.attempt) not in ended]
    assert cut, "the victim was running nothing when it was killed"
    records = sorted(records + cut, key=lambda r: (r.at, r.kind == "S"))
    assert max(running_at_each_start(records, "capped").values()) <= 4
    assert {r.job_id for r in records if r.kind == "S"} == set(ids)
    # Each job the victim was running ran again elsewhere.
    again = {r.job_id for r in records if r.kind == "S" and r.pid != victim.pid and r.at > killed_at}
    assert {r.job_id for r in cut} <= again


def test_rate_limit_holds_across_processes(db: str, direct_store: Store, recorded: Recorded) -> None:
    # A window opens with its first claim (fixed windows), so any span of one period sees at most twice the rate.
    ids = supaworker.create_jobs([{"type": "capped"}] * 60, store=direct_store)
    supaworker.create_jobs([{"type": "free"}] * 60, store=direct_store)
    supaworker.set_limits("capped", rate_limit=8, rate_period=0.4, store=direct_store)
    recorded.start("--processes", "3", "--concurrency", "8", "--prefetch", "500")
    wait_for(lambda: unfinished(db) == 0, what="the queue to drain")
    recorded.stop_all()

    assert count_by_status(db) == {"completed": 120}
    claims = sorted(claimed_at(db, ids).values())
    starts = sorted(r.at for r in recorded.records() if r.kind == "S" and r.type == "capped")
    for times in (claims, starts):
        assert len(times) == 60
        assert max(sum(1 for t in times[i:] if t < start + 0.4) for i, start in enumerate(times)) <= 16


def test_children_never_start_before_every_parent_completed_across_processes(
    db: str, direct_store: Store, recorded: Recorded
) -> None:
    # Diamonds (root -> four middles -> join -> tail, the tail also on the root) on four processes: one middle
    # fails for good in every third graph (its join and tail are cancelled), fails once then succeeds in
    # another third (they run); some joins are cancelled by request while the graph runs; then the failed
    # middles are fixed and retried, which resumes their chains.
    jobs: list[dict] = []
    groups = 45
    for g in range(groups):
        jobs.append({"type": "step", "key": f"r{g}", "payload": {"sleep": 0.005}})
        for m in range(4):
            payload: dict = {"sleep": 0.01}
            if m == 0 and g % 3 == 1:
                payload = {"fail": True}
            elif m == 0 and g % 3 == 2:
                payload = {"fail_once": True}
            jobs.append(
                {
                    "type": "step",
                    "key": f"m{g}.{m}",
                    "depends_on": [f"r{g}"],
                    "payload": payload,
                    "max_attempts": 1 if g % 3 == 1 else 2,
                }
            )
        jobs.append({"type": "step", "key": f"j{g}", "depends_on": [f"m{g}.{m}" for m in range(4)]})
        jobs.append({"type": "step", "key": f"t{g}", "depends_on": [f"j{g}", f"r{g}"]})
    ids = supaworker.create_jobs(jobs, store=direct_store)
    by_key = {job["key"]: job_id for job, job_id in zip(jobs, ids, strict=True)}
    parents = {job_id: [by_key[k] for k in job.get("depends_on", [])] for job, job_id in zip(jobs, ids, strict=True)}

    recorded.start("--processes", "4", "--concurrency", "6", "--prefetch", "50", SUPAWORKER_RETRY_BASE_SECONDS="0")
    cancelled = [g for g in range(0, groups, 6)]  # ok graphs (g % 3 == 0), cancelled as the workers run
    for g in cancelled:
        supaworker.cancel_job(by_key[f"j{g}"], store=direct_store)
    wait_for(lambda: unfinished(db) == 0, what="the graphs to settle")

    def status(key: str) -> str:
        return supaworker.get_job(by_key[key], store=direct_store).status.value

    for g in range(groups):
        expected = "cancelled" if g % 3 == 1 or g in cancelled else "completed"
        assert (status(f"j{g}"), status(f"t{g}")) == (expected, expected), f"graph {g}"

    with psycopg.connect(db, autocommit=True) as c:
        c.execute("UPDATE supaworker.jobs SET payload = '{}' WHERE payload ? 'fail'")
    for g in range(1, groups, 3):
        supaworker.retry_job(by_key[f"m{g}.0"], store=direct_store)
    wait_for(lambda: unfinished(db) == 0, what="the retried chains to finish")
    recorded.stop_all()

    for g in range(1, groups, 3):
        assert (status(f"j{g}"), status(f"t{g}")) == ("completed", "completed"), f"retried graph {g}"
    records = recorded.records()
    last_end: dict[int, float] = {}
    for r in records:
        if r.kind == "E":
            last_end[r.job_id] = max(last_end.get(r.job_id, 0.0), r.at)
    early = [
        (r.job_id, parent)
        for r in records
        if r.kind == "S"
        for parent in parents[r.job_id]
        if r.at < last_end.get(parent, float("inf"))
    ]
    assert early == []
    ran = {r.job_id for r in records if r.kind == "S"}
    assert ran >= {by_key[f"t{g}"] for g in range(groups) if g % 3 != 1 and g not in cancelled}
    assert ran.isdisjoint(by_key[f"j{g}"] for g in cancelled)


def test_one_unique_job_from_concurrent_python_and_sql_producers_then_one_after_its_period(
    db: str, direct_store: Store, recorded: Recorded
) -> None:
    # Producers through the Python API and through the SQL API race for each key while workers run the jobs;
    # once the holder's period is over (moved back rather than waited for), they race again for its successor.
    recorded.start("--processes", "2", "--concurrency", "4")

    def burst(key: str) -> tuple[set[int], list[bool]]:
        barrier = threading.Barrier(12)
        ids: set[int] = set()
        fresh: list[bool] = []
        lock = threading.Lock()

        def python_producer() -> None:
            with psycopg.connect(db, autocommit=True) as c:
                barrier.wait()
                job = supaworker.create_job("free", unique_key=key, unique_for=3600, conn=c)
            with lock:
                ids.add(job.id)
                fresh.append(not job.duplicate)

        def sql_producer() -> None:
            with psycopg.connect(db, autocommit=True) as c:
                barrier.wait()
                row = c.execute(
                    "SELECT supaworker.create_job(type => 'free', unique_key => %s, unique_for => 3600)", (key,)
                ).fetchone()
            assert row is not None
            with lock:
                ids.add(int(row[0]["id"]))
                fresh.append(not row[0]["duplicate"])

        threads = [threading.Thread(target=python_producer if i % 2 else sql_producer) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return ids, fresh

    keys = [f"sync:{i}" for i in range(8)]
    first = {}
    for key in keys:
        ids, fresh = burst(key)
        assert len(ids) == 1 and sorted(fresh) == [False] * 11 + [True], key
        first[key] = ids.pop()
    wait_for(lambda: unfinished(db) == 0, what="the unique jobs to run")
    for key in keys:  # a completed holder within its period keeps the key
        ids, fresh = burst(key)
        assert ids == {first[key]} and not any(fresh), key
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("UPDATE supaworker.jobs SET unique_until = now() - interval '1 second'")
    for key in keys:
        ids, fresh = burst(key)
        assert len(ids) == 1 and ids != {first[key]} and sorted(fresh) == [False] * 11 + [True], key
    wait_for(lambda: unfinished(db) == 0, what="the successors to run")
    recorded.stop_all()
    assert count_by_status(db) == {"completed": 16}
    assert len({r.job_id for r in recorded.records() if r.kind == "S"}) == 16
