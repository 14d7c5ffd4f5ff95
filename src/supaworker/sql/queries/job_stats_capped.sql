-- The job_stats view's columns for `GET /api/jobs?action=stats`, at a bounded cost: per status it reads at
-- most %(cap)s jobs through that status's own index (the newest finished ones, the head of the queue, ...),
-- like the dashboard's count_jobs_capped, then keeps the %(types)s types with the most of them. Each row says
-- whether its status reached the cap (`capped`: counts and durations then cover those %(cap)s jobs) and the
-- rank of its type; rows of rank %(types)s + 1 only tell the caller that more types exist.
WITH sample AS MATERIALIZED (
  (SELECT 'waiting'::{{schema}}.job_status AS status, type, started_at, completed_at, created_at
     FROM {{schema}}.jobs WHERE status = 'waiting' ORDER BY id DESC LIMIT %(cap)s)
  UNION ALL
  (SELECT 'pending', type, started_at, completed_at, created_at
     FROM {{schema}}.jobs WHERE status = 'pending' ORDER BY priority, run_at, id LIMIT %(cap)s)
  UNION ALL
  (SELECT 'processing', type, started_at, completed_at, created_at
     FROM {{schema}}.jobs WHERE status = 'processing' ORDER BY lease_expires_at LIMIT %(cap)s)
  UNION ALL
  (SELECT 'completed', type, started_at, completed_at, created_at
     FROM {{schema}}.jobs WHERE status = 'completed' ORDER BY completed_at DESC LIMIT %(cap)s)
  UNION ALL
  (SELECT 'failed', type, started_at, completed_at, created_at
     FROM {{schema}}.jobs WHERE status = 'failed' ORDER BY completed_at DESC LIMIT %(cap)s)
  UNION ALL
  (SELECT 'cancelled', type, started_at, completed_at, created_at
     FROM {{schema}}.jobs WHERE status = 'cancelled' ORDER BY completed_at DESC LIMIT %(cap)s)
), ranked AS (
  -- Types by how many of the counted jobs they have; only the first %(types)s + 1 are aggregated further.
  SELECT type, row_number() OVER (ORDER BY count(*) DESC, type) AS type_rank FROM sample GROUP BY type
), statuses AS (
  SELECT status, count(*) >= %(cap)s AS capped FROM sample GROUP BY status
)
SELECT j.type,
       j.status,
       count(*)::bigint AS count,
       round(avg(extract(epoch FROM j.completed_at - j.started_at))::numeric, 3) AS avg_duration_seconds,
       round((percentile_cont(0.5) WITHIN GROUP (
         ORDER BY extract(epoch FROM j.completed_at - j.started_at)))::numeric, 3) AS p50_duration_seconds,
       round((percentile_cont(0.95) WITHIN GROUP (
         ORDER BY extract(epoch FROM j.completed_at - j.started_at)))::numeric, 3) AS p95_duration_seconds,
       min(j.created_at) AS oldest_created_at,
       max(j.created_at) AS newest_created_at,
       s.capped,
       r.type_rank
  FROM sample j JOIN ranked r USING (type) JOIN statuses s USING (status)
 WHERE r.type_rank <= %(types)s + 1
 GROUP BY j.type, j.status, s.capped, r.type_rank
 ORDER BY count(*) DESC, j.type, j.status
