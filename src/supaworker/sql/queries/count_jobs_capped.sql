-- Jobs per status and type for the dashboard and metrics, reading at most %(cap)s rows per status through
-- that status's own index, so a huge backlog or history costs a bounded scan. A status whose rows add up
-- to the cap has at least that many.
SELECT 'waiting' AS status, type, count(*) AS count
  FROM (SELECT type FROM {{schema}}.jobs WHERE status = 'waiting' LIMIT %(cap)s) s GROUP BY type
UNION ALL
SELECT 'pending', type, count(*)
  FROM (SELECT type FROM {{schema}}.jobs WHERE status = 'pending' LIMIT %(cap)s) s GROUP BY type
UNION ALL
SELECT 'processing', type, count(*)
  FROM (SELECT type FROM {{schema}}.jobs WHERE status = 'processing' LIMIT %(cap)s) s GROUP BY type
UNION ALL
SELECT 'completed', type, count(*)
  FROM (SELECT type FROM {{schema}}.jobs
         WHERE completed_at IS NOT NULL AND status = 'completed' LIMIT %(cap)s) s GROUP BY type
UNION ALL
SELECT 'failed', type, count(*)
  FROM (SELECT type FROM {{schema}}.jobs WHERE status = 'failed'
         LIMIT %(cap)s) s GROUP BY type
UNION ALL
SELECT 'cancelled', type, count(*)
  FROM (SELECT type FROM {{schema}}.jobs WHERE status = 'cancelled'
         LIMIT %(cap)s) s GROUP BY type
