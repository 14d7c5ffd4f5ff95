-- What a role may do in the supaworker schema (doctor's RLS check: anon and authenticated should get nothing).
SELECT 'use schema' WHERE has_schema_privilege(%(role)s, %(schema)s, 'USAGE')
UNION ALL
SELECT 'read ' || c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND has_table_privilege(%(role)s, c.oid, 'SELECT')
UNION ALL
SELECT 'call ' || p.proname
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = %(schema)s AND has_function_privilege(%(role)s, p.oid, 'EXECUTE')
