SELECT * FROM {{schema}}.active_jobs ORDER BY started_at LIMIT %(limit)s
