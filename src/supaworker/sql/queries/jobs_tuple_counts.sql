-- Live and dead tuples of the jobs table as the statistics collector last saw them.
SELECT coalesce(n_live_tup, 0), coalesce(n_dead_tup, 0)
  FROM pg_stat_user_tables WHERE relid = '{{schema}}.jobs'::regclass
