-- Retries a batch of jobs in id order (the order every multi-row write locks in), each as retry_job() does;
-- returns how many went back to the queue (a job that cannot be retried is left as it is).
SELECT count(*) FILTER (WHERE r.status IS NOT NULL)
  FROM (SELECT {{schema}}.retry_job(b.id) AS status
          FROM (SELECT DISTINCT id FROM unnest(%(ids)s::bigint[]) AS u(id) ORDER BY id) b) r
