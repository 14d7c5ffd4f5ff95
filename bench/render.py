"""Render bench/results/<name>.json (written by run.py) as <name>.md and <name>.png.

    bench/.venv-peers/bin/python bench/render.py bench/results/short.json

Markdown needs only the standard library; the chart needs matplotlib (installed in bench/.venv-peers).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

BASE = "supaworker"
TITLES = {
    "enqueue_single": "Enqueue, one job per transaction",
    "enqueue_bulk": "Enqueue, all jobs in one bulk call",
    "drain_p1": "Drain, 1 worker process x concurrency 10",
    "drain_p2": "Drain, 2 worker processes x concurrency 10",
    "latency": "Pickup latency, idle worker, one job at a time at ~50/s",
    "backlog_small": "Drain rate with a small backlog queued",
    "backlog_large": "Drain rate with a large backlog queued",
}


def fmt(v: float | None, kind: str = "rate") -> str:
    if v is None:
        return "-"
    if kind == "rate":
        return f"{v:,.0f}"
    if kind == "cpu":
        return f"{v:.3f}"
    return f"{v:.1f}"


def cell(m: dict[str, Any] | None, kind: str = "rate") -> str:
    if not m:
        return "-"
    if m["n"] == 1:
        return fmt(m["median"], kind)
    return f"{fmt(m['median'], kind)} ({fmt(m['min'], kind)}-{fmt(m['max'], kind)})"


def ratio(summary: dict[str, Any], key: str, label: str, metric: str) -> str:
    try:
        r = summary[key][label][metric]["median"] / summary[key][BASE][metric]["median"]
    except (KeyError, ZeroDivisionError):
        return "-"
    return f"{r:.2f}x"


def markdown(doc: dict[str, Any]) -> str:
    s, env, prof = doc.get("summary", {}), doc["environment"], doc["profile"]
    labels = [c["label"] for c in doc["configs"]]
    pg, v = env["postgres"], env["versions"]
    backlog = ""
    if any(k.startswith("backlog") for k in s):
        backlog = (
            f", backlog {prof.get('backlog_small', 0):,} vs {prof.get('backlog_large', 0):,} queued "
            f"(rate over the first {prof.get('sample', 0):,})"
        )
    loads = [r["load1"] for r in doc["runs"] if "load1" in r]
    load = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "?"
    cpu_note = (
        "Server CPU = CPU time of the PostgreSQL backends serving the system's own database "
        "(BullMQ†: of redis-server), read from /proc; see bench/README.md"
    )
    out = [
        f"# supaworker benchmark: {doc['name']}",
        "",
        f"Run {doc['started']} to {doc.get('finished', '?')}, {doc['repeat']} repetition(s) per figure; "
        "cells are median (min-max); ratios are system / supaworker, taken from this same run.",
        f"Host: {env['cpus']} x {env['cpu_model']}, {env['mem_gib']:.1f} GiB, load average at start "
        f"{' '.join(env['loadavg'])}, 1-min load average during the runs {load} (shared machine). "
        f"PostgreSQL {pg['server_version']}: fsync={pg['fsync']}, "
        f"synchronous_commit={pg['synchronous_commit']}, shared_buffers={pg['shared_buffers']}, "
        f"max_wal_size={pg['max_wal_size']} (server defaults).",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + ".",
        f"Sizes: enqueue {prof['single']:,} single / {prof['bulk']:,} bulk, drain {prof['drain']:,}, "
        f"latency {prof['latency']:,} jobs{backlog}. {cpu_note}.",
        "",
        "## Summary (medians)",
        "",
        "| system | enqueue 1/txn jobs/s | enqueue bulk jobs/s | drain 1x10 jobs/s | drain 2x10 jobs/s "
        "| server CPU ms/job (drain 1x10) | latency p50 / p95 / p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def med(key: str, label: str, metric: str) -> float | None:
        return s.get(key, {}).get(label, {}).get(metric, {}).get("median")

    for lb in labels:
        lat = " / ".join(fmt(med("latency", lb, p), "ms") for p in ("p50_ms", "p95_ms", "p99_ms"))
        dagger = "†" if lb.startswith("bullmq") else ""
        out.append(
            f"| {lb} | {fmt(med('enqueue_single', lb, 'jobs_per_s'))}"
            f" | {fmt(med('enqueue_bulk', lb, 'jobs_per_s'))}"
            f" | {fmt(med('drain_p1', lb, 'jobs_per_s'))} | {fmt(med('drain_p2', lb, 'jobs_per_s'))}"
            f" | {fmt(med('drain_p1', lb, 'server_cpu_ms_per_job'), 'cpu')}{dagger} | {lat} |"
        )
    for key, title in TITLES.items():
        if key not in s:
            continue
        out += ["", f"## {title}", ""]
        if key == "latency":
            out += [
                "| system | p50 ms | p95 ms | p99 ms | max ms | missing |",
                "|---|---:|---:|---:|---:|---:|",
            ]
            for lb in labels:
                m = s[key].get(lb, {})
                row = [cell(m.get(p), "ms") for p in ("p50_ms", "p95_ms", "p99_ms", "max_ms")]
                out.append(f"| {lb} | {' | '.join(row)} | {cell(m.get('missing'))} |")
            continue
        once = key.startswith("drain")
        head = "| system | jobs/s | x supaworker | server CPU ms/job |" + (
            " duplicates | missing | worker start-up s |" if once else ""
        )
        out += [head, "|---|---:|---:|---:|" + ("---:|---:|---:|" if once else "")]
        for lb in labels:
            m = s[key].get(lb, {})
            row = f"| {lb} | {cell(m.get('jobs_per_s'))} | {ratio(s, key, lb, 'jobs_per_s')} | "
            row += cell(m.get("server_cpu_ms_per_job"), "cpu") + " |"
            if once:
                once_cells = [
                    cell(m.get("duplicates")),
                    cell(m.get("missing")),
                    cell(m.get("startup_s"), "ms"),
                ]
                row += f" {' | '.join(once_cells)} |"
            out.append(row)
    if doc.get("soak"):
        sp = doc.get("soak_params", {})
        out += [
            "",
            f"## Soak: {sp.get('seconds', '?')} s of steady enqueue + drain at {sp.get('rate', '?')} jobs/s",
            "",
            "| system | jobs | p50 ms | p99 ms | server CPU ms/job | duplicates | missing |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for lb, r in doc["soak"].items():
            out.append(
                f"| {lb} | {r.get('jobs', '-')} | {fmt(r.get('p50_ms'), 'ms')} | {fmt(r.get('p99_ms'), 'ms')}"
                f" | {fmt(r.get('server_cpu_ms_per_job'), 'cpu')} | {r.get('duplicates', '-')}"
                f" | {r.get('missing', '-')} |"
            )
        out += [
            "",
            "Sampled each minute (PostgreSQL: sums over the system's tables; BullMQ: Redis memory, keys):",
            "",
            "| system | minute | dead tuples | table MB | index MB |",
            "|---|---:|---:|---:|---:|",
        ]
        for lb, r in doc["soak"].items():
            for smp in [*r.get("samples", []), {"t_s": "end", **r.get("final", {})}]:
                minute = smp["t_s"] if smp["t_s"] == "end" else smp["t_s"] // 60
                if "redis_used_memory" in smp:
                    out.append(
                        f"| {lb} | {minute} | - | redis {smp['redis_used_memory'] / 2**20:.1f} MB | "
                        f"{smp['keys']} keys |"
                    )
                elif "dead_tuples" in smp:
                    out.append(
                        f"| {lb} | {minute} | {smp['dead_tuples']:,} | {smp['table_bytes'] / 2**20:.1f} | "
                        f"{smp['index_bytes'] / 2**20:.1f} |"
                    )
    out += ["", "## Settings per system", ""]
    seen = {}
    for run in doc["runs"]:
        seen.setdefault(run["label"], run["result"].get("settings"))
    out += [f"- **{lb}**: `{json.dumps(st)}`" for lb, st in seen.items()]
    if doc["errors"]:
        out += ["", "## Errors", ""]
        for e in doc["errors"]:
            detail = (e.get("stderr") or e.get("worker_stderr") or "").strip().splitlines()[-1:] or [""]
            out.append(f"- {e['label']} / {e['scenario']}: {e['error']} {detail[0][:200]}")
    return "\n".join(out) + "\n"


def chart(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, labels = doc.get("summary", {}), [c["label"] for c in doc["configs"]]
    panels = [
        ("enqueue_single", ["jobs_per_s"], "enqueue, 1 job/txn (jobs/s)"),
        ("enqueue_bulk", ["jobs_per_s"], "enqueue, bulk (jobs/s)"),
        ("drain", ["drain_p1", "drain_p2"], "drain (jobs/s): 1x10 vs 2x10 processes x concurrency"),
        ("latency", ["p50_ms", "p95_ms", "p99_ms"], "pickup latency (ms): p50 / p95 / p99"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    for ax, (key, series, title) in zip(axes.flat, panels, strict=True):
        width = 0.8 / len(series)
        for k, name in enumerate(series):
            sc, metric = (name, "jobs_per_s") if key == "drain" else (key, name)
            ms = [s.get(sc, {}).get(lb, {}).get(metric) for lb in labels]
            med = [m["median"] if m else 0 for m in ms]
            err = [
                [m["median"] - m["min"] if m else 0 for m in ms],
                [m["max"] - m["median"] if m else 0 for m in ms],
            ]
            pos = [i + (k - (len(series) - 1) / 2) * width for i in range(len(labels))]
            ax.barh(pos, med, height=width, xerr=err, capsize=2, label=name.replace("_ms", ""))
        ax.set_yticks(range(len(labels)), labels)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=8)
    fig.suptitle(f"supaworker benchmark ({doc['name']}): median, bars = min-max over {doc['repeat']} run(s)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    src = Path(sys.argv[1])
    doc = json.loads(src.read_text())
    src.with_suffix(".md").write_text(markdown(doc))
    try:
        chart(doc, src.with_suffix(".png"))
    except ImportError:
        print("matplotlib not available: no chart (run with bench/.venv-peers/bin/python)", file=sys.stderr)
    print(f"wrote {src.with_suffix('.md')} and {src.with_suffix('.png')}", file=sys.stderr)


if __name__ == "__main__":
    main()
