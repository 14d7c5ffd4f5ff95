-- The console's job search within waiting jobs: ids below %(before_id)s, newest first (jobs_waiting_idx).
SELECT id FROM {{schema}}.jobs
 WHERE status = 'waiting' AND id < %(before_id)s
 ORDER BY id DESC
 LIMIT %(scan)s
