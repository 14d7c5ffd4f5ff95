-- schema.sql's types (sql/schema_file.py): each enum with its labels in order, then its comment.
SELECT 'CREATE TYPE ' || t.oid::regtype::text || E' AS ENUM (\n'
       || (SELECT string_agg('  ' || quote_literal(e.enumlabel), E',\n' ORDER BY e.enumsortorder)
             FROM pg_enum e WHERE e.enumtypid = t.oid)
       || E'\n);'
       || coalesce(E'\nCOMMENT ON TYPE ' || t.oid::regtype::text || ' IS '
                   || quote_literal(obj_description(t.oid, 'pg_type')) || ';', '')
  FROM pg_type t
 WHERE t.typnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s) AND t.typtype = 'e'
 ORDER BY t.typname
