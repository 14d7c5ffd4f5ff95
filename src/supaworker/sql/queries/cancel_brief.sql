SELECT {{schema}}.cancel_brief(%(id)s, %(reason)s)
