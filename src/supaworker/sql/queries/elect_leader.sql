-- Takes or renews a leadership lease; true while this id holds it.
SELECT {{schema}}.elect_leader(%(name)s, %(leader_id)s, %(ttl_seconds)s)
