-- Runs outside any transaction block (the maintenance pool is in autocommit mode).
VACUUM (ANALYZE) {{schema}}.jobs
