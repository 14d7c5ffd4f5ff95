SELECT j.*,
       array(SELECT d.depends_on FROM {{schema}}.job_dependencies d WHERE d.job_id = j.id ORDER BY 1) AS depends_on
  FROM {{schema}}.jobs j
 WHERE j.id = %(id)s
