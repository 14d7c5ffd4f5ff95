-- The console's job search within some briefs (one brief, or a user's newest): at most %(cap)s + 1 of their
-- jobs' ids (jobs_brief_idx). More than %(cap)s, and the search walks the primary key instead.
SELECT id FROM {{schema}}.jobs
 WHERE brief_id = ANY (%(brief_ids)s::uuid[])
 LIMIT %(cap)s + 1
