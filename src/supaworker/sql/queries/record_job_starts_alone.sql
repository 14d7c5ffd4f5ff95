-- The worker may start every job it claimed up to place %(through)s of its claim sequence; sent on its own,
-- so its commit need not wait for the disk (see record_job_starts_alone in sql/schema.sql).
SELECT {{schema}}.record_job_starts_alone(%(worker_id)s, %(through)s)
