-- Every job of one brief, in creation order.
SELECT * FROM {{schema}}.jobs WHERE brief_id = %(brief_id)s ORDER BY id
