-- A tenant back to the default weight of 1.
DELETE FROM {{schema}}.fairness_weights WHERE key = %(key)s RETURNING key
