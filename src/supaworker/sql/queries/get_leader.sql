SELECT name, leader_id, elected_at, expires_at, expires_at > now() AS active
  FROM {{schema}}.leaders WHERE name = %(name)s
