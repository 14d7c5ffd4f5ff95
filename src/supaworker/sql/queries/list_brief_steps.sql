-- The jobs of several briefs (their steps) in one read, by brief then creation order, each with the ids it
-- depends on: the dashboard's briefs panel draws a few recent briefs on every refresh.
SELECT j.*,
       array(SELECT d.depends_on FROM {{schema}}.job_dependencies d WHERE d.job_id = j.id ORDER BY 1) AS depends_on
  FROM {{schema}}.jobs_with_history j
 WHERE j.brief_id = ANY (%(ids)s::uuid[])
 ORDER BY j.brief_id, j.id
