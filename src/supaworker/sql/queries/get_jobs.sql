-- Jobs by id, in the order of the ids given (create_jobs(return_records=True)).
SELECT j.*,
       array(SELECT d.depends_on FROM {{schema}}.job_dependencies d WHERE d.job_id = j.id ORDER BY 1) AS depends_on
  FROM unnest(%(ids)s::bigint[]) WITH ORDINALITY AS wanted (id, position)
  JOIN {{schema}}.jobs j ON j.id = wanted.id
 ORDER BY wanted.position
