-- Cancels a job and every unfinished job that depends on it (cancel_job() as it is now: sql/schema.sql).
SELECT {{schema}}.cancel_job(%(id)s, %(reason)s)::text
