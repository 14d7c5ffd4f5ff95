-- Deletes one bounded batch of finished jobs of one status older than the given age.
SELECT {{schema}}.prune_finished_jobs(%(status)s::{{schema}}.job_status, %(older_than_seconds)s, %(limit)s)
