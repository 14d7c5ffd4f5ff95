-- A job in the queue's table or, once finished and moved (migration 0019), in job_history.
SELECT j.*,
       array(SELECT d.depends_on FROM {{schema}}.job_dependencies d WHERE d.job_id = j.id ORDER BY 1) AS depends_on
  FROM {{schema}}.jobs_with_history j
 WHERE j.id = %(id)s
 LIMIT 1  -- found in jobs, history is not read (an id is in one table or the other)
