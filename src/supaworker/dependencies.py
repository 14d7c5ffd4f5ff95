"""Job dependencies: the checks that need no database.

A job may depend on existing jobs (by id) and, within one `create_jobs` batch, on other jobs of the batch
(by their `key`). It waits until every parent completed (fan-in), any number of jobs may depend on one
(fan-out), and a parent that fails for good cancels its dependents. The database enforces the same rules
(trigger `job_dependencies_check`); these give a clear error before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import InvalidJob
from .rules import DEPENDS_ON_KEY_MESSAGE, MAX_DEPENDENCIES, MAX_KEY_LENGTH


def check_depends_on(depends_on: Any, *, allow_keys: bool = False) -> list[int | str]:
    """Validates a `depends_on` value: a list of job ids (and batch keys when `allow_keys`), duplicates
    dropped, order kept. Raises InvalidJob naming the bad entry."""
    if depends_on is None:
        return []
    if isinstance(depends_on, str | bytes | Mapping) or not isinstance(depends_on, Iterable):
        raise InvalidJob("depends_on must be a list of job ids", field="depends_on")
    refs: list[int | str] = []
    for ref in depends_on:
        if isinstance(ref, bool) or not isinstance(ref, int | str):
            raise InvalidJob(f"depends_on entries must be job ids, not {ref!r}", field="depends_on")
        if isinstance(ref, int) and not 1 <= ref < 2**63:
            raise InvalidJob(f"depends_on entries must be job ids, not {ref!r}", field="depends_on")
        if isinstance(ref, str) and not allow_keys:
            raise InvalidJob(f"depends_on entries must be job ids (integers), not {ref!r}", field="depends_on")
        if isinstance(ref, str) and (not ref.strip() or len(ref) > MAX_KEY_LENGTH):
            raise InvalidJob(DEPENDS_ON_KEY_MESSAGE, field="depends_on")
        if ref not in refs:
            refs.append(ref)
    if len(refs) > MAX_DEPENDENCIES:
        raise InvalidJob(f"a job may depend on at most {MAX_DEPENDENCIES} jobs, not {len(refs)}", field="depends_on")
    return refs


def check_parents(job_label: str, parent_ids: Sequence[int], statuses: Mapping[int, str]) -> str:
    """Given the current status of each existing parent, returns the status the new job starts in
    (`pending` when all completed, else `waiting`); raises InvalidJob for unknown, failed or cancelled ones."""
    unknown = [p for p in parent_ids if p not in statuses]
    if unknown:
        raise InvalidJob(
            f"{job_label} depends on unknown job id(s) {', '.join(map(str, unknown))}"
            " (not in the queue: never made, pruned, or finished and moved to history)",
            field="depends_on",
        )
    dead = [(p, statuses[p]) for p in parent_ids if statuses[p] in ("failed", "cancelled")]
    if dead:
        described = ", ".join(f"job {p} is {s}" for p, s in dead)
        raise InvalidJob(
            f"{job_label} cannot depend on a job that will never complete: {described}", field="depends_on"
        )
    return "pending" if all(statuses[p] == "completed" for p in parent_ids) else "waiting"


def topological_order(keys: Sequence[str | None], edges: Mapping[int, Sequence[int]]) -> list[int]:
    """Orders the jobs of a batch so that each comes after the batch jobs it depends on (`edges` maps a job's
    index to its parents' indexes). Raises InvalidJob naming a cycle."""
    order: list[int] = []
    state: dict[int, int] = {}  # 1 = on the current path, 2 = done

    def label(i: int) -> str:
        return repr(keys[i]) if keys[i] is not None else f"#{i}"

    for start in range(len(keys)):
        if state.get(start):
            continue
        # Iterative DFS: a batch may be a long chain.
        stack: list[tuple[int, int]] = [(start, 0)]
        path: list[int] = []
        while stack:
            node, next_child = stack.pop()
            if next_child == 0:
                state[node] = 1
                path.append(node)
            parents = edges.get(node, ())
            if next_child < len(parents):
                stack.append((node, next_child + 1))
                parent = parents[next_child]
                if state.get(parent) == 1:
                    cycle = [*path[path.index(parent) :], parent]
                    raise InvalidJob("dependency cycle: " + " -> ".join(label(i) for i in cycle))
                if not state.get(parent):
                    stack.append((parent, 0))
            else:
                state[node] = 2
                path.pop()
                order.append(node)
    return order
