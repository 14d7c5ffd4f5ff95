-- The types and queues paused now: a worker whose LISTEN (re)connected hands back what it holds of them, as a
-- NOTIFY sent while it was not listening would have made it do.
SELECT scope, name FROM {{schema}}.job_controls WHERE paused
