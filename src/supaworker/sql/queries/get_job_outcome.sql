-- What wait_for() needs: where the job is, and its result or error.
SELECT status::text, result, last_error FROM {{schema}}.jobs_with_history WHERE id = %(id)s
 LIMIT 1  -- as get_job.sql: history is read only for a job not in jobs
