INSERT INTO {{schema}}.briefs (user_id, title, description, query, media_type, use_pipeline, pipeline)
VALUES (%(user_id)s, %(title)s, %(description)s, %(query)s, %(media_type)s, %(use_pipeline)s, %(pipeline)s)
RETURNING id
