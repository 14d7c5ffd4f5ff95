-- schema.sql's triggers (sql/schema_file.py): every trigger not made by a constraint, by table, then by name.
SELECT c.relname AS table_name, pg_get_triggerdef(t.oid, true) || ';'
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s) AND NOT t.tgisinternal
 ORDER BY c.relname, t.tgname
