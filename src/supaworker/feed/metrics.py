"""Prometheus metrics at `GET /metrics`, all read from the change feed (no query per scrape).

supaworker_jobs{status,type}                       jobs per state (counted up to the feed's cap)
supaworker_jobs_count_capped{status}               1 when that state has at least the counted number
supaworker_jobs_finished_total{type,status}        jobs that reached a final state (since start)
supaworker_job_duration_seconds{type}              run time of finished attempts (histogram)
supaworker_job_queue_latency_seconds{type}         runnable until started, of finished jobs (histogram)
supaworker_throughput_jobs_per_second              jobs finished per second over the last minute
supaworker_oldest_pending_age_seconds              age of the oldest runnable job
supaworker_workers                                 workers alive
supaworker_sse_clients                             open event streams
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .change_feed import SERIES_BUCKET_SECONDS, ChangeFeed

DURATION_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
THROUGHPUT_WINDOW_SECONDS = 60


class JobMetrics:
    """One registry per app, so several apps in one process (tests) never share counters."""

    def __init__(self, feed: ChangeFeed) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.finished = Counter(
            "supaworker_jobs_finished", "Jobs that reached a final state.", ["type", "status"], registry=self.registry
        )
        self.duration = self._seconds(
            "supaworker_job_duration_seconds", "Run time of the last attempt of finished jobs."
        )
        self.latency = self._seconds(
            "supaworker_job_queue_latency_seconds", "Time from runnable to started, of finished jobs."
        )
        self.registry.register(_FeedCollector(feed))
        feed.on_finished(self.observe_finished)

    def _seconds(self, name: str, documentation: str) -> Histogram:
        """A histogram of seconds per job type."""
        return Histogram(name, documentation, ["type"], buckets=DURATION_BUCKETS_SECONDS, registry=self.registry)

    def observe_finished(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.finished.labels(row["type"], row["status"]).inc()
            if row["duration_seconds"] is not None:
                self.duration.labels(row["type"]).observe(max(row["duration_seconds"], 0.0))
            if row["queue_latency_seconds"] is not None:
                self.latency.labels(row["type"]).observe(max(row["queue_latency_seconds"], 0.0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _FeedCollector(Collector):
    def __init__(self, feed: ChangeFeed) -> None:
        self.feed = feed

    def collect(self) -> Iterator[Metric]:
        snapshot = self.feed.snapshot
        jobs = GaugeMetricFamily(
            "supaworker_jobs", "Jobs per state and type (counted up to a cap).", labels=["status", "type"]
        )
        capped = GaugeMetricFamily(
            "supaworker_jobs_count_capped",
            "1 when the state has at least the counted number of jobs.",
            labels=["status"],
        )
        workers = GaugeMetricFamily("supaworker_workers", "Workers alive.")
        oldest = GaugeMetricFamily("supaworker_oldest_pending_age_seconds", "Age of the oldest runnable job.")
        throughput = GaugeMetricFamily(
            "supaworker_throughput_jobs_per_second", "Jobs finished per second over the last minute."
        )
        clients = GaugeMetricFamily("supaworker_sse_clients", "Open event streams.")
        if snapshot is not None:
            for status, by_type in sorted(snapshot.counts.items()):
                for job_type, count in sorted(by_type.items()):
                    jobs.add_metric([status, job_type], count)
            for status in snapshot.totals:
                capped.add_metric([status], 1 if status in snapshot.capped else 0)
            workers.add_metric([], len(snapshot.workers))
            oldest.add_metric([], snapshot.oldest_pending_age_seconds or 0.0)
            recent = self.feed.series()[-(THROUGHPUT_WINDOW_SECONDS // SERIES_BUCKET_SECONDS) :]
            done = sum(b.completed + b.failed for b in recent)
            throughput.add_metric([], done / THROUGHPUT_WINDOW_SECONDS)
        clients.add_metric([], self.feed.subscriber_count)
        yield from (jobs, capped, workers, oldest, throughput, clients)
