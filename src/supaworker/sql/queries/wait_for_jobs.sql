-- A worker whose claim came back empty waits for a NOTIFY until now + seconds (wait_for_jobs(): sql/schema.sql).
SELECT {{schema}}.wait_for_jobs(%(worker_id)s, %(seconds)s)
