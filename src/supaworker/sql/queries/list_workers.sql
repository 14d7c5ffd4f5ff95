-- Workers for the console: those with an open connection (each names its connections supaworker:<worker id>;
-- the host is the connection's) and those holding jobs (at most %(cap)s processing jobs, jobs_lease_idx),
-- with how many jobs each holds, how many of those it only claimed ahead (not begun: past its recorded
-- starts, see 0007) and its last lease renewal (the newest lease less %(lease_seconds)s).
WITH live AS (
  SELECT substr(a.application_name, length('supaworker:') + 1) AS worker_id,
         min(a.backend_start) AS connected_since, count(*)::int AS connections,
         min(host(a.client_addr)) AS client_addr, min(a.client_hostname) AS client_hostname
    FROM pg_stat_activity a
   WHERE a.datname = current_database() AND a.application_name LIKE 'supaworker:worker-%%'
   GROUP BY a.application_name
   LIMIT %(limit)s
), held AS (
  SELECT worker_id, handler_started, claim_seq, lease_expires_at
    FROM {{schema}}.jobs WHERE status = 'processing'
   ORDER BY lease_expires_at LIMIT %(cap)s
), by_worker AS (
  SELECT h.worker_id, count(*)::int AS held,
         count(*) FILTER (WHERE NOT h.handler_started
                            AND h.claim_seq > coalesce({{schema}}.job_starts_of(h.worker_id), 0))::int AS prefetched,
         max(h.lease_expires_at) - make_interval(secs => %(lease_seconds)s) AS last_renewal
    FROM held h GROUP BY h.worker_id
)
SELECT coalesce(l.worker_id, b.worker_id) AS worker_id, l.connected_since, coalesce(l.connections, 0) AS connections,
       l.client_addr, l.client_hostname, coalesce(b.held, 0) AS held, coalesce(b.prefetched, 0) AS prefetched,
       least(b.last_renewal, now()) AS last_renewal, now() AS db_now
  FROM live l FULL JOIN by_worker b ON b.worker_id = l.worker_id
 ORDER BY 1
 LIMIT %(limit)s
