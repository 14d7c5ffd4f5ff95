-- Workers alive: each worker names its connections `supaworker:<worker id>`; the session list shows the
-- live ones without a table of its own to keep up to date.
SELECT substr(application_name, length('supaworker:') + 1) AS worker_id,
       min(backend_start) AS connected_since,
       count(*)::int AS connections
  FROM pg_stat_activity
 WHERE datname = current_database() AND application_name LIKE 'supaworker:worker-%%'
 GROUP BY application_name
 ORDER BY 1
