-- The console's job search within a status with no index in id order (pending, processing, completed): at
-- most %(cap)s + 1 of its ids, each through that status's own index in that index's order. When the status
-- has no more than %(cap)s jobs this is all of them; more, and the search walks the primary key instead.
(SELECT id FROM {{schema}}.jobs WHERE status = 'pending' AND %(status)s::text = 'pending'
  ORDER BY priority, run_at, id LIMIT %(cap)s + 1)
UNION ALL
(SELECT id FROM {{schema}}.jobs WHERE status = 'processing' AND %(status)s::text = 'processing'
  ORDER BY lease_expires_at LIMIT %(cap)s + 1)
UNION ALL
(SELECT id FROM {{schema}}.jobs WHERE status = 'completed' AND %(status)s::text = 'completed'
  ORDER BY completed_at DESC LIMIT %(cap)s + 1)
