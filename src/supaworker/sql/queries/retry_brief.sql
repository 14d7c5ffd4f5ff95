SELECT {{schema}}.retry_brief(%(id)s)
