-- Invalid indexes in the schema: leftovers of a failed CREATE INDEX / REINDEX CONCURRENTLY.
SELECT c.relname
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND NOT i.indisvalid
 ORDER BY 1
