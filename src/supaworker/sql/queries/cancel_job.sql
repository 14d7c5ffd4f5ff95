SELECT {{schema}}.cancel_job(%(id)s, %(reason)s)::text
