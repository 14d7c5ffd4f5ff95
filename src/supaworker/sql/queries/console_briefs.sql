-- Briefs for the console's list, newest first below the cursor (created_at, id), optionally of one user and
-- one status. The status is derived per brief (briefs_with_status), so at most %(scan)s briefs below the
-- cursor are looked at (briefs_created_idx or briefs_user_idx), whatever the table holds.
WITH recent AS (
  SELECT b.id, b.created_at FROM {{schema}}.briefs b
   WHERE (%(user_id)s::text IS NULL OR b.user_id = %(user_id)s)
     AND (%(before_at)s::timestamptz IS NULL OR (b.created_at, b.id) < (%(before_at)s, %(before_id)s::uuid))
   ORDER BY b.created_at DESC, b.id DESC
   LIMIT %(scan)s
)
SELECT v.id, v.user_id, v.title, v.media_type, v.use_pipeline, v.status, v.failed_step,
       left(v.error, 500) AS error, left(v.query, 300) AS query, v.steps_total, v.steps_completed, v.created_at,
       v.started_at, v.completed_at, (SELECT min(r.created_at) FROM recent r) AS scanned_to
  FROM recent r JOIN {{schema}}.briefs_with_status v ON v.id = r.id
 WHERE (%(status)s::text IS NULL OR v.status = %(status)s)
 ORDER BY r.created_at DESC, r.id DESC
 LIMIT %(limit)s
