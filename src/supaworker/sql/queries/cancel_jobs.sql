-- Cancels a batch of jobs in id order, each as cancel_job() does (a running job's worker is told at once);
-- returns how many were cancelled (a job already finished is left as it is).
SELECT count(*) FILTER (WHERE r.status IS NOT NULL)
  FROM (SELECT {{schema}}.cancel_job(b.id, %(reason)s) AS status
          FROM (SELECT DISTINCT id FROM unnest(%(ids)s::bigint[]) AS u(id) ORDER BY id) b) r
