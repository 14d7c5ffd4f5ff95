-- schema.sql's indexes (sql/schema_file.py): those no constraint of the table made (those are in its CREATE
-- TABLE), by table, then by name; each with its comment. Not those of partitions (see dump_tables.sql).
SELECT t.relname AS table_name,
       pg_get_indexdef(i.indexrelid, 0, true) || ';'
       || coalesce(E'\nCOMMENT ON INDEX ' || i.indexrelid::regclass::text || ' IS '
                   || quote_literal(obj_description(i.indexrelid, 'pg_class')) || ';', '')
  FROM pg_index i
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_class x ON x.oid = i.indexrelid
 WHERE t.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s) AND NOT t.relispartition
   AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                    WHERE k.conrelid = i.indrelid AND k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x'))
 ORDER BY t.relname, x.relname
