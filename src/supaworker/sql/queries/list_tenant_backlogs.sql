-- The tenants (fairness keys) with jobs queued, at most %(keys)s of them found by a skip scan of
-- jobs_fair_claim_idx, each with its weight, its runnable backlog (read up to %(cap)s jobs) and when the oldest
-- of those became runnable; the biggest backlogs first, %(limit)s of them.
WITH RECURSIVE k(key) AS (
  (SELECT c.fairness_key FROM {{schema}}.jobs c WHERE c.status = 'pending' ORDER BY c.fairness_key LIMIT 1)
  UNION ALL
  SELECT (SELECT c.fairness_key FROM {{schema}}.jobs c
           WHERE c.status = 'pending' AND c.fairness_key > k.key ORDER BY c.fairness_key LIMIT 1)
    FROM k WHERE k.key IS NOT NULL
), keys AS (
  SELECT k.key FROM k WHERE k.key IS NOT NULL LIMIT %(keys)s
)
SELECT keys.key, coalesce(w.weight, 1) AS weight, b.backlog, b.backlog >= %(cap)s AS capped, b.oldest_run_at
  FROM keys
  LEFT JOIN {{schema}}.fairness_weights w ON w.key = keys.key
 CROSS JOIN LATERAL (
       SELECT count(*) FILTER (WHERE s.run_at <= now()) AS backlog,
              min(s.run_at) FILTER (WHERE s.run_at <= now()) AS oldest_run_at
         FROM (SELECT c.run_at FROM {{schema}}.jobs c
                WHERE c.status = 'pending' AND c.fairness_key = keys.key
                ORDER BY c.priority, c.run_at, c.id
                LIMIT %(cap)s) s) b
 ORDER BY b.backlog DESC, keys.key
 LIMIT %(limit)s
