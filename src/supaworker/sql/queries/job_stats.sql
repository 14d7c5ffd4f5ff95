SELECT * FROM {{schema}}.job_stats ORDER BY count DESC, type, status
