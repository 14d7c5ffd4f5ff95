-- supaworker's own tables with row-level security off (doctor's RLS check).
SELECT c.relname
  FROM pg_class c
 CROSS JOIN LATERAL pg_identify_object('pg_class'::regclass, c.oid, 0) i
  JOIN {{schema}}.owned_objects o ON o.type = i.type AND o.identity = i.identity
 WHERE c.relnamespace = to_regnamespace(%(schema)s) AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity
 ORDER BY 1
