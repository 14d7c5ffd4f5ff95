-- The objects supaworker created in its schema (migration 0009), by pg_identify_object()'s type.
SELECT type, identity FROM {{schema}}.owned_objects ORDER BY type, identity
