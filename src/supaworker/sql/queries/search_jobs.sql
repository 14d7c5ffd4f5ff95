-- The rows of the console's job list: the jobs among %(ids)s (at most a search window of them) below
-- %(before_id)s that match every filter given (NULL: any), newest first. Long values are cut here, so a
-- page never carries a whole payload or traceback.
-- With %(action)s, only those a bulk action would change: retry takes failed or cancelled jobs whose parents
-- did not fail (retry_job() refuses those), cancel takes unfinished ones, delete finished ones that no
-- unfinished job depends on (as the pruner keeps them).
SELECT j.id, j.type, j.queue, j.status::text AS status, j.priority, j.attempts, j.max_attempts, j.brief_id,
       j.worker_id, j.created_at, j.run_at, j.started_at, j.completed_at, j.progress, j.progress_message,
       left(j.last_error, %(text_chars)s) AS last_error,
       left(j.payload::text, %(text_chars)s) AS payload_text
  FROM {{schema}}.jobs j
 WHERE j.id = ANY (%(ids)s::bigint[])
   AND j.id < %(before_id)s
   AND (%(status)s::text IS NULL OR j.status = %(status)s::{{schema}}.job_status)
   AND (%(type)s::text IS NULL OR j.type = %(type)s)
   AND (%(queue)s::text IS NULL OR j.queue = %(queue)s)
   AND (%(brief_ids)s::uuid[] IS NULL OR j.brief_id = ANY (%(brief_ids)s::uuid[]))
   AND (%(error)s::text IS NULL OR strpos(lower(j.last_error), lower(%(error)s)) > 0)
   AND (%(created_after)s::timestamptz IS NULL OR j.created_at >= %(created_after)s)
   AND (%(created_before)s::timestamptz IS NULL OR j.created_at < %(created_before)s)
   AND CASE %(action)s::text
         WHEN 'retry' THEN j.status IN ('failed', 'cancelled')
           AND NOT EXISTS (SELECT 1 FROM {{schema}}.job_dependencies d JOIN {{schema}}.jobs p ON p.id = d.depends_on
                            WHERE d.job_id = j.id AND p.status IN ('failed', 'cancelled'))
         WHEN 'cancel' THEN j.status IN ('waiting', 'pending', 'processing')
         WHEN 'delete' THEN j.status IN ('completed', 'failed', 'cancelled')
           AND NOT EXISTS (SELECT 1 FROM {{schema}}.job_dependencies d JOIN {{schema}}.jobs c ON c.id = d.job_id
                            WHERE d.depends_on = j.id AND c.status IN ('waiting', 'pending', 'processing'))
         ELSE %(action)s::text IS NULL
       END
 ORDER BY j.id DESC
 LIMIT %(limit)s
