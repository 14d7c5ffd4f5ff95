-- 0022: the views active_jobs and pending_jobs_queue answer for a job whose time is infinite.
--
-- Plain SQL can store 'infinity' or '-infinity' in started_at or created_at, and now() minus an infinite
-- time is an error in PostgreSQL ("cannot subtract infinite timestamps"): one such row failed every read of
-- the view, and so GET /api/jobs?action=active or action=pending. Its running_for or age is now NULL (unknown),
-- as for a time not set; the columns, their order and their types are unchanged.

CREATE OR REPLACE VIEW {{schema}}.active_jobs AS
 SELECT jobs.id,
    jobs.type,
    jobs.queue,
    jobs.priority,
    jobs.attempts,
    jobs.max_attempts,
    jobs.worker_id,
    jobs.brief_id,
    jobs.payload,
    jobs.started_at,
    jobs.lease_expires_at,
    CASE WHEN isfinite(jobs.started_at) THEN now() - jobs.started_at END AS running_for,
    jobs.created_at,
    jobs.progress,
    jobs.progress_message,
    jobs.progress_at
   FROM {{schema}}.jobs
  WHERE jobs.status = 'processing'::{{schema}}.job_status;

CREATE OR REPLACE VIEW {{schema}}.pending_jobs_queue AS
 SELECT jobs.id,
    jobs.type,
    jobs.queue,
    jobs.priority,
    jobs.attempts,
    jobs.max_attempts,
    jobs.run_at,
    jobs.brief_id,
    jobs.payload,
    jobs.created_at,
    CASE WHEN isfinite(jobs.created_at) THEN now() - jobs.created_at END AS age,
    jobs.run_at <= now() AS runnable
   FROM {{schema}}.jobs
  WHERE jobs.status = 'pending'::{{schema}}.job_status
  ORDER BY jobs.priority, jobs.run_at, jobs.id;
