-- Which of PUBLIC, anon and authenticated may not use a schema (doctor's ownership check: in a schema that is
-- not supaworker's, an earlier schema-wide secure_schema() took USAGE from them).
SELECT 'PUBLIC' AS role
 WHERE NOT EXISTS (
   SELECT 1 FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
    WHERE n.oid = to_regnamespace(%(schema)s) AND a.grantee = 0 AND a.privilege_type = 'USAGE')
UNION ALL
SELECT rolname FROM pg_roles
 WHERE rolname IN ('anon', 'authenticated') AND NOT has_schema_privilege(rolname, %(schema)s, 'USAGE')
