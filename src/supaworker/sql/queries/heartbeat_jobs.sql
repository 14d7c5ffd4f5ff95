-- Extends the leases a worker still holds; returns the ids it still owns.
-- heartbeat_jobs() as it is now: sql/schema.sql.
SELECT id FROM {{schema}}.heartbeat_jobs(%(worker_id)s, %(ids)s, %(lease_seconds)s) AS id
