-- Puts a failed or cancelled job back in the queue (retry_job() as it is now: sql/schema.sql).
SELECT {{schema}}.retry_job(%(id)s)::text
