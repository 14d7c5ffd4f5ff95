-- Compare-and-set of a schedule's last tick, enqueuing that tick's job in the same statement.
SELECT job_id FROM {{schema}}.advance_periodic_job(%(name)s, %(prev_tick)s, %(tick)s, %(enqueue)s)
