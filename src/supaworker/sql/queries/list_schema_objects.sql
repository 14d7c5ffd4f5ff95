-- Every table, view, sequence, function and type in a schema, by pg_identify_object()'s identity: what
-- `supaworker migrate` finds in a schema it has not installed into (it installs only into an empty one).
SELECT i.identity
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
 ORDER BY 1
