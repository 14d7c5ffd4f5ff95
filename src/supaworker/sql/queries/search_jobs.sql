-- The rows of the console's job list: the jobs among %(ids)s (at most a search window of them) below
-- %(before_id)s that match every filter given (NULL: any), newest first. Long values are cut here, so a
-- page never carries a whole payload or traceback.
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
 ORDER BY j.id DESC
 LIMIT %(limit)s
