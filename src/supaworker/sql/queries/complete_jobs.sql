-- Completes a batch, fenced per row; returns the ids that were really completed.
SELECT id FROM {{schema}}.complete_jobs(%(worker_id)s, %(ids)s, %(attempts)s, %(results)s) AS id
