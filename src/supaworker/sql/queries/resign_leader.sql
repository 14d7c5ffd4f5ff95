-- Gives leadership up at once (graceful shutdown), so another worker need not wait for the lease to expire.
DELETE FROM {{schema}}.leaders WHERE name = %(name)s AND leader_id = %(leader_id)s
