-- Gives a tenant (fairness_key) its weight in the claim's shares.
INSERT INTO {{schema}}.fairness_weights AS w (key, weight) VALUES (%(key)s, %(weight)s)
ON CONFLICT (key) DO UPDATE SET weight = excluded.weight, updated_at = now()
RETURNING key, weight, updated_at
