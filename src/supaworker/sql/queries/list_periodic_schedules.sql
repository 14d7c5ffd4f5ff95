-- Schedules for the console and `GET /api/periodic`, by name (at most %(limit)s), each with the status of the
-- last job it enqueued (a primary-key probe) and the database clock.
SELECT p.name, p.cron, p.type, p.queue, p.priority, p.max_attempts, p.catch_up, p.enabled, p.source,
       p.last_tick_at, p.last_job_id, p.created_at, p.updated_at, now() AS db_now,
       j.status::text AS last_job_status, j.created_at AS last_job_created_at, j.completed_at AS last_job_completed_at
  FROM {{schema}}.periodic_jobs p
  LEFT JOIN {{schema}}.jobs j ON j.id = p.last_job_id
 ORDER BY p.name
 LIMIT %(limit)s
