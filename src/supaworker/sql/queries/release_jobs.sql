-- Hands unfinished jobs back on graceful shutdown.
-- release_jobs() as it is now: sql/schema.sql.
SELECT id FROM {{schema}}.release_jobs(%(worker_id)s, %(ids)s, %(attempts)s) AS id
