-- Briefs filtered by user and status (either may be NULL), newest first, paginated by created_at.
SELECT * FROM {{schema}}.briefs_with_status
 WHERE (%(user_id)s::text IS NULL OR user_id = %(user_id)s)
   AND (%(status)s::text IS NULL OR status = %(status)s)
   AND (%(before)s::timestamptz IS NULL OR created_at < %(before)s)
 ORDER BY created_at DESC, id
 LIMIT %(limit)s
