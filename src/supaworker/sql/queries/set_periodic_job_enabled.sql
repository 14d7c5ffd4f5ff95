-- Enables or disables a schedule; returns its row, none when there is no such schedule. Enabling one that was
-- off starts counting its ticks from now: what fell due while it was off is not caught up.
UPDATE {{schema}}.periodic_jobs
   SET enabled = %(enabled)s,
       last_tick_at = CASE WHEN %(enabled)s AND NOT enabled THEN now() ELSE last_tick_at END,
       updated_at = now()
 WHERE name = %(name)s
RETURNING *
