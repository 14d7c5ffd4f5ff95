-- Sets a type's global concurrency cap and rate limit (NULL removes either).
SELECT {{schema}}.set_job_limits(%(type)s, %(max_running)s, %(rate_limit)s, %(rate_period_seconds)s)
