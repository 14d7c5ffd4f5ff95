SELECT * FROM {{schema}}.pending_jobs_queue LIMIT %(limit)s
