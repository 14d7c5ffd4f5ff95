-- What schema.sql would leave out (sql/schema_file.py refuses to write an incomplete file): objects in the
-- schema of a kind, or with a setting, that the dump_* queries do not print.
WITH ns AS (
  SELECT oid FROM pg_namespace WHERE nspname = %(schema)s
)
SELECT CASE c.relkind WHEN 'm' THEN 'materialized view ' WHEN 'f' THEN 'foreign table ' WHEN 'c' THEN 'composite type ' WHEN 'S' THEN 'sequence '
                      ELSE 'relation of kind ' || c.relkind::text || ' ' END || c.relname
  FROM pg_class c JOIN ns ON c.relnamespace = ns.oid
 WHERE c.relkind NOT IN ('r', 'p', 'v', 'i', 'I', 'S')
    -- Sequences only as identity columns (printed with their column).
    OR (c.relkind = 'S' AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'i'))
UNION ALL
SELECT 'identity sequence ' || c.relname || ' with options of its own'
  FROM pg_class c JOIN ns ON c.relnamespace = ns.oid JOIN pg_sequence s ON s.seqrelid = c.oid
 WHERE c.relkind = 'S'
   AND (s.seqstart <> 1 OR s.seqincrement <> 1 OR s.seqmin <> 1 OR s.seqcache <> 1 OR s.seqcycle
        OR s.seqmax <> CASE s.seqtypid WHEN 'int2'::regtype THEN 32767 WHEN 'int4'::regtype THEN 2147483647
                                       ELSE 9223372036854775807 END)
UNION ALL
SELECT 'table ' || c.relname || ': ' || concat_ws(', ',
         CASE WHEN c.relreplident <> 'd' THEN 'replica identity' END,
         -- A partition is data (dump_tables.sql); inheritance of another kind is not printed.
         CASE WHEN NOT c.relispartition AND EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
              THEN 'inheritance' END,
         CASE WHEN c.reltablespace <> 0 THEN 'tablespace' END,
         CASE WHEN c.reloftype <> 0 THEN 'typed table' END)
  FROM pg_class c JOIN ns ON c.relnamespace = ns.oid
 WHERE c.relkind = 'r'
   AND (c.relreplident <> 'd' OR c.reltablespace <> 0 OR c.reloftype <> 0
        OR (NOT c.relispartition AND EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)))
UNION ALL
SELECT 'column ' || c.relname || '.' || a.attname || ': storage, compression or statistics target set'
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns ON c.relnamespace = ns.oid
  JOIN pg_type t ON t.oid = a.atttypid
 WHERE c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
   AND (a.attstorage <> t.typstorage OR a.attcompression <> '' OR a.attstattarget >= 0)
UNION ALL
SELECT 'index ' || c.relname || ': tablespace'
  FROM pg_class c JOIN ns ON c.relnamespace = ns.oid WHERE c.relkind = 'i' AND c.reltablespace <> 0
UNION ALL
SELECT 'type ' || t.typname || ' (' || CASE t.typtype WHEN 'd' THEN 'domain' WHEN 'r' THEN 'range'
                                                      WHEN 'm' THEN 'multirange' WHEN 'b' THEN 'base type'
                                                      WHEN 'p' THEN 'pseudo-type' ELSE t.typtype::text END || ')'
  FROM pg_type t JOIN ns ON t.typnamespace = ns.oid
 WHERE t.typrelid = 0 AND t.typcategory <> 'A' AND t.typtype <> 'e'
UNION ALL
SELECT CASE p.prokind WHEN 'a' THEN 'aggregate ' ELSE 'window function ' END || p.proname
  FROM pg_proc p JOIN ns ON p.pronamespace = ns.oid WHERE p.prokind NOT IN ('f', 'p')
UNION ALL
SELECT 'trigger ' || t.tgname || ' on ' || c.relname || ' (disabled or replica-only)'
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN ns ON c.relnamespace = ns.oid
 WHERE NOT t.tgisinternal AND t.tgenabled <> 'O'
UNION ALL
SELECT 'rule ' || r.rulename || ' on ' || c.relname
  FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN ns ON c.relnamespace = ns.oid
 WHERE r.rulename <> '_RETURN'
UNION ALL
-- Every other kind of object in the schema (operators and their classes and families, collations,
-- conversions, text search objects, extended statistics, ...): each depends on the schema it is in.
SELECT pg_describe_object(d.classid, d.objid, d.objsubid)
  FROM pg_depend d JOIN ns ON d.refclassid = 'pg_namespace'::regclass AND d.refobjid = ns.oid
 WHERE d.classid NOT IN ('pg_class'::regclass, 'pg_proc'::regclass, 'pg_type'::regclass)
UNION ALL
SELECT 'default privileges for ' || d.defaclrole::regrole::text FROM pg_default_acl d JOIN ns ON d.defaclnamespace = ns.oid
ORDER BY 1
