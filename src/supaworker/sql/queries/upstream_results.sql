-- The results of every completed ancestor of a job, nearest last (depth 1 = a direct parent).
-- upstream_results() as it is now: sql/schema.sql.
SELECT id, type, result, depth FROM {{schema}}.upstream_results(%(id)s)
