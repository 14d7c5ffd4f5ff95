-- The queues page's sample of finished jobs: the time before %(now)s cut into %(slices)s slices of
-- %(width)s seconds, and from each the newest %(per_slice)s jobs that finished in it (jobs_completed_at_idx),
-- with how long each waited and ran. At most slices x per_slice rows, whatever the table holds; a slice
-- that returns per_slice rows had more, and its totals are estimated from their rate.
SELECT s.slice, f.type, f.queue, f.status, f.completed_at, f.run_seconds, f.wait_seconds
  FROM generate_series(0, %(slices)s - 1) AS s(slice)
 CROSS JOIN LATERAL (
       SELECT j.type, j.queue, j.status::text AS status, j.completed_at,
              extract(epoch FROM j.completed_at - j.started_at)::float8 AS run_seconds,
              extract(epoch FROM j.started_at - j.run_at)::float8 AS wait_seconds
         FROM {{schema}}.jobs j
        WHERE j.completed_at IS NOT NULL
          AND j.completed_at <= %(now)s - make_interval(secs => %(width)s * s.slice)
          AND j.completed_at > %(now)s - make_interval(secs => %(width)s * (s.slice + 1))
        ORDER BY j.completed_at DESC
        LIMIT %(per_slice)s) f
