-- The jobs of a brief in creation order (its steps), each with the ids it depends on.
SELECT j.*,
       array(SELECT d.depends_on FROM {{schema}}.job_dependencies d WHERE d.job_id = j.id ORDER BY 1) AS depends_on
  FROM {{schema}}.jobs_with_history j
 WHERE j.brief_id = %(id)s
 ORDER BY j.id
