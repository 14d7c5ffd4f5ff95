-- The results of every completed ancestor of a job, nearest last (depth 1 = a direct parent).
WITH RECURSIVE ancestors(id, depth) AS (
  SELECT d.depends_on, 1 FROM {{schema}}.job_dependencies d WHERE d.job_id = %(id)s
  UNION
  SELECT d.depends_on, a.depth + 1 FROM {{schema}}.job_dependencies d JOIN ancestors a ON d.job_id = a.id
)
SELECT j.id, j.type, j.result, min(a.depth) AS depth
  FROM ancestors a JOIN {{schema}}.jobs j ON j.id = a.id
 WHERE j.status = 'completed'
 GROUP BY j.id
 ORDER BY depth DESC, j.id
