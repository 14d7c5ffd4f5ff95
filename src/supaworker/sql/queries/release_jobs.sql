-- Hands unfinished jobs back on graceful shutdown.
SELECT id FROM {{schema}}.release_jobs(%(worker_id)s, %(ids)s, %(attempts)s) AS id
