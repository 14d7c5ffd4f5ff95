"""A worker's options as the data a supervisor hands its children: JSON there and back, unchanged."""

from __future__ import annotations

import dataclasses
import json

import pytest

from supaworker.worker.options import WorkerOptions, WorkerSpec

OPTIONS = WorkerOptions(
    concurrency=3,
    poll_interval_seconds=0.25,
    job_timeout_seconds=4.0,
    lease_seconds=7.5,
    rescue_interval_seconds=4.0,
    retry_base_seconds=0.25,
    retry_cap_seconds=9.0,
    shutdown_grace_seconds=2.5,
    queues=["a", "b"],
    types=["record", "flaky"],
    prefetch=5,
)


def test_worker_spec_survives_json_with_every_option() -> None:
    spec = WorkerSpec(OPTIONS, imports=("app.handlers", "app.more"), builtins=False)
    assert WorkerSpec.from_json(spec.to_json()) == spec
    # Every field of WorkerOptions travels, so a new option needs no mapping of its own.
    assert set(json.loads(spec.to_json())["options"]) == {f.name for f in dataclasses.fields(WorkerOptions)}


def test_worker_spec_keeps_queue_slots_and_what_they_imply() -> None:
    options = dataclasses.replace(OPTIONS, queue_concurrency={"a": 2, "b": 4})
    back = WorkerSpec.from_json(WorkerSpec(options).to_json()).options
    assert back == options
    assert (back.queues, back.concurrency, back.prefetch) == (["a", "b"], 6, 0)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"options": {}, "imports": []}',
        '{"options": {}, "imports": "app", "builtins": true}',
        '{"options": {"concurrency": 1}, "imports": [], "builtins": true}',
    ],
)
def test_worker_spec_rejects_what_to_json_never_writes(text: str) -> None:
    with pytest.raises(ValueError):
        WorkerSpec.from_json(text)


def test_worker_spec_names_an_option_this_version_does_not_know() -> None:
    data = json.loads(WorkerSpec(OPTIONS).to_json())
    data["options"]["warp_factor"] = 9
    with pytest.raises(ValueError, match=r"unknown worker option.*warp_factor"):
        WorkerSpec.from_json(json.dumps(data))
