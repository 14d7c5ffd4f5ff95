-- Runnable and running jobs by type and queue for the queues page: the first %(cap)s runnable jobs in claim
-- order (jobs_claim_idx) with the oldest run_at among them, and at most %(cap)s running jobs (jobs_lease_idx).
SELECT 'runnable' AS kind, h.type, h.queue, count(*) AS count, min(h.run_at) AS oldest_run_at
  FROM (SELECT type, queue, run_at FROM {{schema}}.jobs
         WHERE status = 'pending' AND run_at <= now()
         ORDER BY priority, run_at, id LIMIT %(cap)s) h
 GROUP BY h.type, h.queue
UNION ALL
SELECT 'running', r.type, r.queue, count(*), NULL
  FROM (SELECT type, queue FROM {{schema}}.jobs WHERE status = 'processing'
         ORDER BY lease_expires_at LIMIT %(cap)s) r
 GROUP BY r.type, r.queue
