"""A worker's options: what `supaworker worker` and `up` are given, as one value the supervisor hands to its
children unchanged."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from .protocol import RetryDelays


@dataclass
class WorkerOptions:
    concurrency: int
    poll_interval_seconds: float
    job_timeout_seconds: float
    lease_seconds: float
    rescue_interval_seconds: float
    retry_base_seconds: float
    retry_cap_seconds: float
    shutdown_grace_seconds: float
    queues: Sequence[str] | None = None
    types: Sequence[str] | None = None  # default: every type with a handler
    # Jobs claimed ahead of free slots, so claims come in batches. They hold a lease like running jobs (the
    # heartbeat renews it), so a crash strands them only until the lease runs out, and they go back uncharged.
    # None: about 0.1 s of work at this worker's pace (see worker/prefetch.py).
    prefetch: int | None = None
    # Named queues with slots of their own (Oban's and River's per-queue limits): each queue is claimed for
    # separately, so a busy queue never takes the slots of another. Overrides queues and concurrency, and
    # claims no more than the free slots of each queue (no prefetch).
    queue_concurrency: Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        if self.queue_concurrency:
            bad = {q: n for q, n in self.queue_concurrency.items() if n < 1}
            if bad:
                raise ValueError(f"queue concurrency must be >= 1: {bad}")
            self.queues = list(self.queue_concurrency)
            self.concurrency = sum(self.queue_concurrency.values())
            self.prefetch = 0

    @property
    def retry_delays(self) -> RetryDelays:
        return RetryDelays(self.retry_base_seconds, self.retry_cap_seconds)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> WorkerOptions:
        values: dict[str, object] = {
            "concurrency": settings.max_concurrent_jobs,
            "poll_interval_seconds": settings.poll_interval_seconds,
            "job_timeout_seconds": settings.job_timeout_seconds,
            "lease_seconds": settings.lease_seconds,
            "rescue_interval_seconds": settings.rescue_interval_seconds,
            "retry_base_seconds": settings.retry_base_seconds,
            "retry_cap_seconds": settings.retry_cap_seconds,
            "shutdown_grace_seconds": settings.shutdown_grace_seconds,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """Every option as a JSON value (what `from_dict` reads back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkerOptions:
        """The options `to_dict` gave; ValueError when a field is missing or unknown to this version."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown worker option(s) {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(str(exc)) from None


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process is started with: its options and how its handlers are registered.

    `worker --processes N` resolves it once and hands it to each child as JSON, so a child runs with exactly
    the options of its parent, and a new option travels without a second mapping to command-line flags.
    """

    options: WorkerOptions
    imports: tuple[str, ...] = ()  # modules that register handlers, imported in this order
    builtins: bool = True  # also run the built-in job types the imports leave unhandled

    def to_json(self) -> str:
        return json.dumps({"options": self.options.to_dict(), "imports": list(self.imports), "builtins": self.builtins})

    def log_fields(self) -> dict[str, Any]:
        """Every option, the imports and builtins, flat: what a supervised worker logs it runs with."""
        return {**self.options.to_dict(), "imports": list(self.imports), "builtins": self.builtins}

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        """The spec `to_json` gave; ValueError when the text is not one."""
        data = json.loads(text)  # its JSONDecodeError is a ValueError
        if not isinstance(data, dict) or set(data) != {"options", "imports", "builtins"}:
            raise ValueError("expected an object with options, imports and builtins")
        options, imports, builtins = data["options"], data["imports"], data["builtins"]
        if not isinstance(options, dict) or not isinstance(imports, list) or not isinstance(builtins, bool):
            raise ValueError("options must be an object, imports a list and builtins true or false")
        return cls(WorkerOptions.from_dict(options), tuple(str(name) for name in imports), builtins)
