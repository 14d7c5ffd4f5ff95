-- A worker that stopped drops its row of worker_starts.
SELECT {{schema}}.forget_job_starts(%(worker_id)s)
