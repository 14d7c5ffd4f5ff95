-- Deletes a batch of finished jobs, locked in id order; a job that no longer is finished, or that an
-- unfinished job depends on (it reads its result), is kept. Returns how many were deleted.
WITH doomed AS (
  SELECT j.id FROM {{schema}}.jobs j
   WHERE j.id = ANY (%(ids)s::bigint[])
     AND j.status IN ('completed', 'failed', 'cancelled')
     AND NOT EXISTS (SELECT 1 FROM {{schema}}.job_dependencies d JOIN {{schema}}.jobs c ON c.id = d.job_id
                      WHERE d.depends_on = j.id AND c.status IN ('waiting', 'pending', 'processing'))
   ORDER BY j.id
     FOR UPDATE OF j
), deleted AS (
  DELETE FROM {{schema}}.jobs j USING doomed WHERE j.id = doomed.id RETURNING j.id
)
SELECT count(*) FROM deleted
