-- The database's clock: times compared with job timestamps come from here, never the host.
SELECT now()
