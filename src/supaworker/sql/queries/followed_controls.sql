-- What a worker follows of job_controls: the types and queues paused now (a worker whose LISTEN (re)connected
-- hands back what it holds of them, as a NOTIFY sent while it was not listening would have made it do) and the
-- rate windows of types (an idle worker looks again once one has passed: nothing tells it a window opened).
SELECT scope, name, paused, CASE WHEN rate_limit IS NOT NULL THEN rate_period_seconds END
  FROM {{schema}}.job_controls
 WHERE paused OR rate_limit IS NOT NULL
