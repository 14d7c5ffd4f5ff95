-- schema.sql's views (sql/schema_file.py): each with its options and its query as PostgreSQL prints it, then
-- the comments on it and its columns.
SELECT 'CREATE VIEW ' || v.oid::regclass::text
       || coalesce(' WITH (' || array_to_string(v.reloptions, ', ') || ')', '')
       || E' AS\n' || pg_get_viewdef(v.oid, true)
       || coalesce(E'\nCOMMENT ON VIEW ' || v.oid::regclass::text || ' IS '
                   || quote_literal(obj_description(v.oid, 'pg_class')) || ';', '')
       || coalesce((SELECT string_agg(E'\nCOMMENT ON COLUMN ' || v.oid::regclass::text || '.' || quote_ident(a.attname)
                                      || ' IS ' || quote_literal(col_description(v.oid, a.attnum)) || ';', ''
                                      ORDER BY a.attnum)
                      FROM pg_attribute a
                     WHERE a.attrelid = v.oid AND a.attnum > 0 AND col_description(v.oid, a.attnum) IS NOT NULL), '')
  FROM pg_class v
 WHERE v.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s) AND v.relkind = 'v'
 ORDER BY v.relname
