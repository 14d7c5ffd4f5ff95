"""The throughput and latency chart as plain numbers for an inline SVG (no charting library, no JS)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..feed import SERIES_BUCKET_SECONDS, Bucket

WIDTH = 600
HEIGHT = 140
PAD_TOP = 10


@dataclass
class Bar:
    x: float
    width: float
    completed_y: float
    completed_height: float
    failed_y: float
    failed_height: float
    title: str


@dataclass
class Chart:
    width: int = WIDTH
    height: int = HEIGHT
    bars: list[Bar] = field(default_factory=list)
    latency_points: str = ""  # SVG polyline points of the average queue latency
    max_rate: float = 0.0  # jobs per second at the top of the chart
    max_latency: float = 0.0  # seconds at the top of the chart
    minutes: int = 0


def throughput_chart(series: list[Bucket]) -> Chart:
    """Bars of jobs finished per second (completed, failed on top) and a line of average queue latency."""
    chart = Chart(minutes=len(series) * SERIES_BUCKET_SECONDS // 60)
    if not series:
        return chart
    usable = HEIGHT - PAD_TOP
    slot = WIDTH / len(series)
    rates = [(b.completed + b.failed) / SERIES_BUCKET_SECONDS for b in series]
    latencies = [b.latency_sum / b.timed if b.timed else None for b in series]
    chart.max_rate = max(max(rates), 1.0)
    chart.max_latency = max([v for v in latencies if v is not None] or [0.0]) or 1.0
    points = []
    for i, bucket in enumerate(series):
        ok_h = usable * bucket.completed / SERIES_BUCKET_SECONDS / chart.max_rate
        fail_h = usable * bucket.failed / SERIES_BUCKET_SECONDS / chart.max_rate
        avg = f", avg wait {latencies[i]:.2f} s" if latencies[i] is not None else ""
        chart.bars.append(
            Bar(
                x=round(i * slot + 1, 1),
                width=round(max(slot - 2, 1), 1),
                completed_y=round(HEIGHT - ok_h, 1),
                completed_height=round(ok_h, 1),
                failed_y=round(HEIGHT - ok_h - fail_h, 1),
                failed_height=round(fail_h, 1),
                title=f"{bucket.completed} completed, {bucket.failed} failed in {SERIES_BUCKET_SECONDS} s{avg}",
            )
        )
        latency = latencies[i]
        if latency is not None:
            y = HEIGHT - usable * latency / chart.max_latency
            points.append(f"{i * slot + slot / 2:.1f},{y:.1f}")
    chart.latency_points = " ".join(points)
    return chart


SPARK_WIDTH = 120
SPARK_HEIGHT = 24


@dataclass
class SparkBar:
    x: float
    ok_y: float
    ok_h: float
    fail_y: float
    fail_h: float


@dataclass
class Sparkline:
    bars: list[SparkBar]
    peak: float
    width: int = SPARK_WIDTH
    height: int = SPARK_HEIGHT
    bar_width: float = 0.0


def sparkline(values: list[tuple[float, float]]) -> Sparkline:
    """Small stacked bars of (completed, failed) per slot, scaled to the busiest slot."""
    peak = max((ok + bad for ok, bad in values), default=0.0) or 1.0
    slot = SPARK_WIDTH / max(len(values), 1)
    bars = []
    for i, (ok, bad) in enumerate(values):
        ok_h = SPARK_HEIGHT * ok / peak
        fail_h = SPARK_HEIGHT * bad / peak
        bars.append(SparkBar(round(i * slot, 1), round(SPARK_HEIGHT - ok_h, 1), round(ok_h, 1),
                             round(SPARK_HEIGHT - ok_h - fail_h, 1), round(fail_h, 1)))  # fmt: skip
    return Sparkline(bars, peak, bar_width=round(max(slot - 1, 0.5), 1))
