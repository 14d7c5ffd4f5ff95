"""Fair shares across tenants: the weights that set how the workers' slots are shared.

A job names its tenant with `fairness_key` (a brief's steps use its `user_id` unless told otherwise; no key
is the default tenant ''). While more than one tenant has jobs queued, every claim shares its batch between
them in proportion to their weights (1 for a tenant not listed here), so one tenant's backlog never makes
the others wait behind it; one tenant alone gets every slot. See `claim_jobs_v2` in sql/schema.sql.
"""

from __future__ import annotations

from typing import Any

import psycopg

from .client import _store_for
from .errors import InvalidJob
from .rules import MAX_FAIRNESS_KEY_LENGTH
from .store import Store
from .validation import check_text

MAX_WEIGHT = 10_000


def set_fairness_weight(
    key: str, weight: int, *, conn: psycopg.Connection | None = None, store: Store | None = None
) -> dict[str, Any]:
    """Gives tenant `key` `weight` shares of the workers (1 to 10,000; every tenant not listed has 1)."""
    check_text("key", key, max_length=MAX_FAIRNESS_KEY_LENGTH, allow_blank=True)
    if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_WEIGHT:
        raise InvalidJob(f"weight must be a whole number from 1 to {MAX_WEIGHT}, not {weight!r}", field="weight")
    return _store_for(conn, store).set_fairness_weight(key, weight, conn)


def remove_fairness_weight(key: str, *, conn: psycopg.Connection | None = None, store: Store | None = None) -> bool:
    """Gives tenant `key` the default weight of 1 again; False when it had none of its own."""
    check_text("key", key, max_length=MAX_FAIRNESS_KEY_LENGTH, allow_blank=True)
    return _store_for(conn, store).delete_fairness_weight(key, conn)


def list_fairness_weights(
    *, conn: psycopg.Connection | None = None, store: Store | None = None
) -> list[dict[str, Any]]:
    """Every tenant with a weight of its own, by key."""
    return _store_for(conn, store).list_fairness_weights(conn)
