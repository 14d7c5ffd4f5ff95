-- Drops the partitions of job_history past retention (migration 0019): their names.
SELECT name FROM {{schema}}.drop_history_partitions(%(older_than_seconds)s) AS name
