-- The server backend serving this connection (doctor: a transaction pooler hands out several).
SELECT pg_backend_pid()
