"""Leader election for the maintenance services: a lease row in the `leaders` table.

Safe behind a transaction pooler (a session advisory lock would be held by whichever backend the pooler
handed out, and leak): the leader renews its lease every `LEADER_RENEW_SECONDS`; when it dies, another
worker takes over once `LEADER_TTL_SECONDS` have passed since the last renewal (River's leader table).
"""

from __future__ import annotations

import logging

from ..store import Store

log = logging.getLogger("supaworker.maintenance")

LEADER_NAME = "maintenance"
LEADER_TTL_SECONDS = 15.0
LEADER_RENEW_SECONDS = 5.0


class LeaderElector:
    """Takes or renews leadership of one role for one worker; `run_once()` says whether it leads now."""

    def __init__(
        self, store: Store, leader_id: str, *, name: str = LEADER_NAME, ttl_seconds: float = LEADER_TTL_SECONDS
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"leader ttl_seconds must be positive, not {ttl_seconds}")
        self.store = store
        self.leader_id = leader_id
        self.name = name
        self.ttl_seconds = ttl_seconds
        self.is_leader = False

    def run_once(self) -> bool:
        leads = self.store.elect_leader(self.name, self.leader_id, self.ttl_seconds)
        if leads != self.is_leader:
            log.info(
                "maintenance leadership %s" % ("taken" if leads else "lost"),
                extra={"leader_id": self.leader_id, "role": self.name},
            )
        self.is_leader = leads
        return leads

    def resign(self) -> None:
        """Hands leadership over at once (on shutdown) instead of making the others wait for the lease."""
        if self.is_leader:
            self.store.resign_leader(self.name, self.leader_id)
            self.is_leader = False
