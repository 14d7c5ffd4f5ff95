-- The worker may start every job it claimed up to place %(through)s of its claim sequence.
SELECT {{schema}}.record_job_starts(%(worker_id)s, %(through)s)
