-- Cancels a job and its waiting dependents (cancel_job() as it is now: sql/schema.sql).
SELECT {{schema}}.cancel_job(%(id)s, %(reason)s)::text
