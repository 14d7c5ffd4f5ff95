-- schema.sql's row-level security (sql/schema_file.py): per table, whether RLS is on (and forced), then its
-- policies by name, written as the migrations write them (defaults left out: PERMISSIVE, FOR ALL).
SELECT c.relname AS table_name, s.statement
  FROM pg_class c
 CROSS JOIN LATERAL (
       SELECT 0 AS ord, NULL::name AS name, 'ALTER TABLE ' || c.oid::regclass::text || ' ENABLE ROW LEVEL SECURITY;'
        WHERE c.relrowsecurity
       UNION ALL
       SELECT 1, NULL, 'ALTER TABLE ' || c.oid::regclass::text || ' FORCE ROW LEVEL SECURITY;'
        WHERE c.relforcerowsecurity
       UNION ALL
       SELECT 2, p.polname,
              'CREATE POLICY ' || quote_ident(p.polname) || ' ON ' || c.oid::regclass::text
              || CASE WHEN p.polpermissive THEN '' ELSE ' AS RESTRICTIVE' END
              || CASE p.polcmd WHEN 'r' THEN ' FOR SELECT' WHEN 'a' THEN ' FOR INSERT' WHEN 'w' THEN ' FOR UPDATE'
                               WHEN 'd' THEN ' FOR DELETE' ELSE '' END
              || ' TO ' || (SELECT string_agg(CASE WHEN r.oid = 0 THEN 'PUBLIC' ELSE quote_ident(g.rolname) END, ', '
                                              ORDER BY r.oid <> 0, g.rolname)
                              FROM unnest(p.polroles) AS r(oid) LEFT JOIN pg_roles g ON g.oid = r.oid)
              || coalesce(' USING (' || pg_get_expr(p.polqual, p.polrelid, true) || ')', '')
              || coalesce(' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid, true) || ')', '')
              || ';'
         FROM pg_policy p
        WHERE p.polrelid = c.oid
     ) AS s(ord, name, statement)
 WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s) AND c.relkind IN ('r', 'p')
   AND NOT c.relispartition  -- see dump_tables.sql
 ORDER BY c.relname, s.ord, s.name
