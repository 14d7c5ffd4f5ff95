-- The backend holding the oldest snapshot or transaction id: what keeps vacuum from removing dead rows.
SELECT pid, extract(epoch FROM now() - xact_start)::int, state
  FROM pg_stat_activity
 WHERE backend_xmin IS NOT NULL OR backend_xid IS NOT NULL
 ORDER BY xact_start
 LIMIT 1
