-- Which of the given ids are briefs (a job may only name a brief that exists).
SELECT id FROM {{schema}}.briefs WHERE id = ANY(%(ids)s::uuid[])
