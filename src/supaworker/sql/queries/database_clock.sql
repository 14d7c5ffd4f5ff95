-- The database's clock as epoch seconds (doctor compares it with the host's).
SELECT extract(epoch FROM clock_timestamp())
