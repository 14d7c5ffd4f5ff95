-- Moves a batch of finished jobs into job_history (migration 0019): how many moved.
SELECT {{schema}}.archive_finished_jobs(%(older_than_seconds)s, %(limit)s, %(partition_seconds)s)
