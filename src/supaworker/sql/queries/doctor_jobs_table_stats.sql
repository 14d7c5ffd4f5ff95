-- The jobs table's live and dead rows, size and last vacuum (doctor's bloat check), and about how many finished
-- jobs it keeps (the entries of jobs_finished_idx as its last vacuum counted them).
SELECT n_live_tup, n_dead_tup, pg_total_relation_size(relid), greatest(last_autovacuum, last_vacuum),
       (SELECT greatest(c.reltuples, 0)::bigint FROM pg_class c
         WHERE c.oid = to_regclass(quote_ident(%(schema)s) || '.jobs_finished_idx'))
  FROM pg_stat_user_tables
 WHERE schemaname = %(schema)s AND relname = 'jobs'
