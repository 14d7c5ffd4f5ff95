-- Writes the latest progress of running jobs, fenced by owner and attempt; returns the ids updated.
-- update_job_progress() as it is now: sql/schema.sql.
SELECT id
  FROM {{schema}}.update_job_progress(%(worker_id)s, %(ids)s::bigint[], %(attempts)s::integer[],
                                      %(percents)s::real[], %(messages)s::text[]) AS id
