-- schema.sql's privileges (sql/schema_file.py): what each role other than an object's owner may do with the
-- schema and its objects, one GRANT per object and role, by kind (schema, types, tables and views, sequences,
-- columns, functions), then object, then role. A role or privilege not listed has none, PUBLIC included.
WITH ns AS (
  SELECT oid FROM pg_namespace WHERE nspname = %(schema)s
), objects AS (
  SELECT 1 AS ord, 'SCHEMA ' || quote_ident(n.nspname) AS target, NULL::text AS column_name,
         coalesce(n.nspacl, acldefault('n', n.nspowner)) AS acl, n.nspowner AS owner
    FROM pg_namespace n JOIN ns ON n.oid = ns.oid
  UNION ALL
  SELECT 2, 'TYPE ' || t.oid::regtype::text, NULL, coalesce(t.typacl, acldefault('T', t.typowner)), t.typowner
    FROM pg_type t JOIN ns ON t.typnamespace = ns.oid
   WHERE t.typrelid = 0 AND t.typcategory <> 'A'
  UNION ALL
  SELECT 3, 'TABLE ' || c.oid::regclass::text, NULL, coalesce(c.relacl, acldefault('r', c.relowner)), c.relowner
    FROM pg_class c JOIN ns ON c.relnamespace = ns.oid
   WHERE c.relkind IN ('r', 'p', 'v') AND NOT c.relispartition  -- see dump_tables.sql
  UNION ALL
  SELECT 4, 'SEQUENCE ' || c.oid::regclass::text, NULL, coalesce(c.relacl, acldefault('s', c.relowner)), c.relowner
    FROM pg_class c JOIN ns ON c.relnamespace = ns.oid
   WHERE c.relkind = 'S'
  UNION ALL
  SELECT 5, 'TABLE ' || c.oid::regclass::text, quote_ident(a.attname), a.attacl, c.relowner
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns ON c.relnamespace = ns.oid
   WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 6, CASE p.prokind WHEN 'p' THEN 'PROCEDURE ' ELSE 'FUNCTION ' END || p.oid::regprocedure::text, NULL,
         coalesce(p.proacl, acldefault('f', p.proowner)), p.proowner
    FROM pg_proc p JOIN ns ON p.pronamespace = ns.oid
)
SELECT o.ord,
       'GRANT ' || string_agg(a.privilege_type || coalesce(' (' || o.column_name || ')', ''), ', '
                              ORDER BY array_position(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE',
                                                            'REFERENCES', 'TRIGGER', 'USAGE', 'CREATE', 'EXECUTE'],
                                                      a.privilege_type::text), o.column_name)
       || ' ON ' || o.target
       || ' TO ' || CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END
       || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END || ';'
  FROM objects o
 CROSS JOIN LATERAL aclexplode(o.acl) a
  LEFT JOIN pg_roles r ON r.oid = a.grantee
 WHERE a.grantee <> o.owner
 GROUP BY o.ord, o.target, a.grantee, r.rolname, a.is_grantable
 ORDER BY o.ord, o.target, a.grantee <> 0, r.rolname, a.is_grantable
