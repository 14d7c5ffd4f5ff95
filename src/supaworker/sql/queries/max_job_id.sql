-- The newest job id (from the primary key): the change feed's cheap sign that jobs were added.
SELECT coalesce(max(id), 0) FROM {{schema}}.jobs
