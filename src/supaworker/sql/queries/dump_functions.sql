-- schema.sql's functions and procedures (sql/schema_file.py): each as PostgreSQL prints it (arguments,
-- result, language, volatility, security, SET options and the full body), by name then arguments; each with
-- its comment.
SELECT rtrim(pg_get_functiondef(p.oid), E'\n') || ';'
       || coalesce(E'\nCOMMENT ON ' || CASE p.prokind WHEN 'p' THEN 'PROCEDURE ' ELSE 'FUNCTION ' END
                   || p.oid::regprocedure::text || ' IS ' || quote_literal(obj_description(p.oid, 'pg_proc')) || ';',
                   '')
  FROM pg_proc p
 WHERE p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s) AND p.prokind IN ('f', 'p')
 ORDER BY p.proname, pg_get_function_identity_arguments(p.oid)
