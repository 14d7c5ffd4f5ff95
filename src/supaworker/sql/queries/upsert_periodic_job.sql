-- Creates or updates a schedule; a new one starts counting ticks from now (database clock). A schedule
-- declared in code keeps an operator's enabled or disabled when a worker writes it again at start; adding
-- one from the CLI or API enables it, and one it switches on again, or whose cron changes, counts ticks
-- from now as well: what fell due while it was off, or under another cron, is no tick to catch up.
INSERT INTO {{schema}}.periodic_jobs AS p (name, cron, type, queue, payload, priority, max_attempts, catch_up, source)
VALUES (%(name)s, %(cron)s, %(type)s, %(queue)s, %(payload)s::jsonb, %(priority)s, %(max_attempts)s, %(catch_up)s, %(source)s)
ON CONFLICT (name) DO UPDATE
   SET cron = excluded.cron, type = excluded.type, queue = excluded.queue, payload = excluded.payload,
       priority = excluded.priority, max_attempts = excluded.max_attempts, catch_up = excluded.catch_up,
       source = excluded.source, updated_at = now(),
       enabled = CASE WHEN excluded.source = 'code' THEN p.enabled ELSE true END,
       last_tick_at = CASE WHEN excluded.cron IS DISTINCT FROM p.cron
                             OR (excluded.source <> 'code' AND NOT p.enabled) THEN now()
                           ELSE p.last_tick_at END
RETURNING *
