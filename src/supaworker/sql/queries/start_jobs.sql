-- Records that claimed-ahead jobs are about to run; returns the ids still owned.
SELECT id FROM {{schema}}.start_jobs(%(worker_id)s, %(ids)s, %(attempts)s) AS id
