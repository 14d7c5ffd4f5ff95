-- Supabase's API roles present in this database, and whether service_role may use the schema.
SELECT r.rolname, r.rolname = 'service_role' AND has_schema_privilege('service_role', %(schema)s, 'USAGE')
  FROM pg_roles r
 WHERE r.rolname IN ('anon', 'authenticated', 'service_role')
   AND to_regnamespace(%(schema)s) IS NOT NULL
 ORDER BY 1
