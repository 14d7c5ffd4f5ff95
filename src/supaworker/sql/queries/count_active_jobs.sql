-- Running jobs of the given workers (the supervisor's health check).
SELECT count(*) FROM {{schema}}.jobs WHERE status = 'processing' AND worker_id LIKE ANY (%(worker_patterns)s)
