-- Every table, view, sequence, function and type in a schema, by pg_identify_object()'s identity and type: what
-- `supaworker migrate` finds in a schema it has not installed into (it installs only into an empty one), and,
-- less what owned_objects lists, what doctor's ownership check reports, each with the marks an earlier,
-- schema-wide secure_schema() left on the tables of others: RLS turned on and its policy.
SELECT i.identity,
       i.type,
       coalesce(c.relrowsecurity, false) AS row_security,
       EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = o.objid AND p.polname = 'service_role_all')
         AS service_role_policy
  FROM (SELECT 'pg_class'::regclass AS classid, c.oid AS objid
          FROM pg_class c
         WHERE c.relnamespace = to_regnamespace(%(schema)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
        UNION ALL
        SELECT 'pg_proc'::regclass, p.oid FROM pg_proc p WHERE p.pronamespace = to_regnamespace(%(schema)s)
        UNION ALL
        SELECT 'pg_type'::regclass, t.oid
          FROM pg_type t
         WHERE t.typnamespace = to_regnamespace(%(schema)s) AND t.typrelid = 0 AND t.typcategory <> 'A') o
 CROSS JOIN LATERAL pg_identify_object(o.classid, o.objid, 0) i
  LEFT JOIN pg_class c ON o.classid = 'pg_class'::regclass AND c.oid = o.objid
 ORDER BY 1
