-- The worker may start every job it claimed up to place %(through)s of its claim sequence (sent with the
-- completions and the next claim, in their transaction).
SELECT {{schema}}.record_job_starts(%(worker_id)s, %(through)s)
