SELECT * FROM {{schema}}.briefs_with_status WHERE id = %(id)s
