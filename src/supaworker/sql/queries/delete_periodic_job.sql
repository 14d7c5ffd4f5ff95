DELETE FROM {{schema}}.periodic_jobs WHERE name = %(name)s RETURNING name
