-- What a role may do with supaworker's own objects (doctor's RLS check: anon and authenticated should get
-- nothing). The schema counts only when it is supaworker's: `public` is the application's to open.
WITH owned AS (
  SELECT w.type, w.identity FROM {{schema}}.owned_objects w
)
SELECT 'use schema'
 WHERE has_schema_privilege(%(role)s, %(schema)s, 'USAGE')
   AND EXISTS (SELECT 1 FROM owned WHERE type = 'schema')
UNION ALL
SELECT 'read ' || c.relname
  FROM pg_class c CROSS JOIN LATERAL pg_identify_object('pg_class'::regclass, c.oid, 0) i
 WHERE c.relnamespace = to_regnamespace(%(schema)s) AND has_table_privilege(%(role)s, c.oid, 'SELECT')
   AND EXISTS (SELECT 1 FROM owned o WHERE o.type = i.type AND o.identity = i.identity)
UNION ALL
SELECT 'call ' || p.proname
  FROM pg_proc p CROSS JOIN LATERAL pg_identify_object('pg_proc'::regclass, p.oid, 0) i
 WHERE p.pronamespace = to_regnamespace(%(schema)s) AND has_function_privilege(%(role)s, p.oid, 'EXECUTE')
   AND EXISTS (SELECT 1 FROM owned o WHERE o.type = i.type AND o.identity = i.identity)
