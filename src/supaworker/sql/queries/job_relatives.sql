-- A job's parents and children (job_dependencies' primary key and depends_on index), at most %(limit)s each.
(SELECT 'parent' AS relation, p.id, p.type, p.status::text AS status
   FROM {{schema}}.job_dependencies d JOIN {{schema}}.jobs_with_history p ON p.id = d.depends_on
  WHERE d.job_id = %(id)s ORDER BY p.id LIMIT %(limit)s)
UNION ALL
(SELECT 'child', c.id, c.type, c.status::text
   FROM {{schema}}.job_dependencies d JOIN {{schema}}.jobs_with_history c ON c.id = d.job_id
  WHERE d.depends_on = %(id)s ORDER BY c.id LIMIT %(limit)s)
