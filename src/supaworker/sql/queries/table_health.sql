-- Bloat and index health of supaworker's tables: dead tuples, vacuum times, invalid indexes (e.g. leftovers
-- of a failed REINDEX CONCURRENTLY), sizes. Reads the statistics views only, never the tables.
SELECT c.relname AS table_name,
       coalesce(s.n_live_tup, 0) AS live_tuples,
       coalesce(s.n_dead_tup, 0) AS dead_tuples,
       round(100.0 * coalesce(s.n_dead_tup, 0) / nullif(coalesce(s.n_live_tup, 0) + coalesce(s.n_dead_tup, 0), 0), 1)
         AS dead_pct,
       s.last_vacuum, s.last_autovacuum, s.last_autoanalyze,
       coalesce(s.autovacuum_count, 0) AS autovacuum_count,
       pg_total_relation_size(c.oid) AS total_bytes,
       coalesce((SELECT array_agg(i.relname::text ORDER BY i.relname)
                   FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                  WHERE x.indrelid = c.oid AND NOT x.indisvalid), '{}') AS invalid_indexes
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 WHERE n.nspname = %(schema)s AND c.relkind = 'r'
 ORDER BY c.relname
