-- Completes a batch, fenced per row; returns the ids that were really completed. The results travel as one
-- JSON array (one encode on the client instead of one jsonb value per job) and are split here, in order; the
-- ids and attempts as the text of arrays (store/worker.py: _int_array).
-- complete_jobs() as it is now: sql/schema.sql.
SELECT id
  FROM {{schema}}.complete_jobs(
         %(worker_id)s, %(ids)s::bigint[], %(attempts)s::integer[],
         ARRAY(SELECT r FROM jsonb_array_elements(%(results)s::jsonb) WITH ORDINALITY AS e(r, n) ORDER BY n)
       ) AS id
