-- The jobs table's live and dead rows, size and last vacuum (doctor's bloat check).
SELECT n_live_tup, n_dead_tup, pg_total_relation_size(relid), greatest(last_autovacuum, last_vacuum)
  FROM pg_stat_user_tables
 WHERE schemaname = %(schema)s AND relname = 'jobs'
