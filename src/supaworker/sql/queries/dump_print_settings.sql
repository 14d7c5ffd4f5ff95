-- How schema.sql is printed (sql/schema_file.py), for this transaction only: every name outside pg_catalog
-- schema-qualified, and constants in defaults, checks and views printed the same whatever the session's
-- settings. Returns the server's major version, which decides how PostgreSQL prints bodies and expressions.
SELECT set_config('search_path', 'pg_catalog', true),
       set_config('DateStyle', 'ISO, MDY', true),
       set_config('IntervalStyle', 'postgres', true),
       set_config('TimeZone', 'UTC', true),
       set_config('extra_float_digits', '1', true),
       set_config('bytea_output', 'hex', true),
       current_setting('server_version_num')::integer / 10000
