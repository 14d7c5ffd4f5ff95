-- Jobs filtered by status and type (either may be NULL), newest first, paginated by id.
SELECT * FROM {{schema}}.jobs
 WHERE (%(status)s::text IS NULL OR status = %(status)s::{{schema}}.job_status)
   AND (%(type)s::text IS NULL OR type = %(type)s)
   AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s)
 ORDER BY id DESC
 LIMIT %(limit)s
