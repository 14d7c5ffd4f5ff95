-- 0011: what a worker reads besides its claims is an SQL function too, so a worker that reaches the database
-- only over PostgREST (no DATABASE_URL) can give a pipeline step its parents' results: jobs_with_parents() and
-- upstream_results(). (Progress already had update_job_progress(); the HTTP worker now calls it as well.)

-- The results of every completed ancestor of a job, nearest last (depth 1 = a direct parent).
CREATE FUNCTION {{schema}}.upstream_results(p_job_id bigint)
RETURNS TABLE (id bigint, type text, result jsonb, depth integer)
LANGUAGE sql STABLE AS $$
  WITH RECURSIVE ancestors(id, depth) AS (
    SELECT d.depends_on, 1 FROM {{schema}}.job_dependencies d WHERE d.job_id = p_job_id
    UNION
    SELECT d.depends_on, a.depth + 1 FROM {{schema}}.job_dependencies d JOIN ancestors a ON d.job_id = a.id
  )
  SELECT j.id, j.type, j.result, min(a.depth)::integer AS depth
    FROM ancestors a JOIN {{schema}}.jobs j ON j.id = a.id
   WHERE j.status = 'completed'
   GROUP BY j.id
   ORDER BY depth DESC, j.id
$$
SET jit = off;

-- Which of these jobs depend on others: a claim over PostgREST returns plain jobs rows, and the worker asks
-- this once per claimed batch to know which jobs need their parents' results.
CREATE FUNCTION {{schema}}.jobs_with_parents(p_ids bigint[]) RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
  SELECT DISTINCT d.job_id FROM {{schema}}.job_dependencies d WHERE d.job_id = ANY (p_ids)
$$
SET jit = off;

INSERT INTO {{schema}}.owned_objects (type, identity)
SELECT o.type, o.identity
  FROM unnest(ARRAY['{{schema}}.upstream_results(bigint)'::regprocedure,
                    '{{schema}}.jobs_with_parents(bigint[])'::regprocedure]) f
 CROSS JOIN LATERAL pg_identify_object('pg_proc'::regclass, f, 0) o
ON CONFLICT DO NOTHING;
