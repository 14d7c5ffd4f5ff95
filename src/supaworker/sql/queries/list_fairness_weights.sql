-- The tenants with a weight of their own.
SELECT key, weight, updated_at FROM {{schema}}.fairness_weights ORDER BY key LIMIT 10000
