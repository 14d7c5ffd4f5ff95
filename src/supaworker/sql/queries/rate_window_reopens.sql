-- Seconds until the first exhausted rate window of these types opens again; NULL when none is exhausted. A
-- worker whose claim came back short looks no later than that, rather than after its poll interval: nothing
-- else tells it that a window opened (a window of 0.5 s under a 1 s poll halved the rate).
SELECT extract(epoch FROM min(window_started_at + rate_period_seconds * interval '1 second') - now())::float8
  FROM {{schema}}.job_controls
 WHERE scope = 'type' AND name = ANY(%(types)s) AND rate_limit IS NOT NULL AND window_count >= rate_limit
   AND window_started_at + rate_period_seconds * interval '1 second' > now()
