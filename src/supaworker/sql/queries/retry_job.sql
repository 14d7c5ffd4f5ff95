SELECT {{schema}}.retry_job(%(id)s)::text
