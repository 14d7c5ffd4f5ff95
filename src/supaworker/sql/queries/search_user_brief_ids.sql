-- A user's newest briefs (briefs_user_idx), at most %(limit)s: the job search by user looks among their jobs.
SELECT id FROM {{schema}}.briefs
 WHERE user_id = %(user_id)s
 ORDER BY created_at DESC
 LIMIT %(limit)s
