-- The would-be parents of a new job, locked so none can complete, fail or be cancelled before the new job
-- and its dependency rows commit (else its completion could miss the new child).
SELECT id, status::text FROM {{schema}}.jobs WHERE id = ANY (%(ids)s::bigint[]) ORDER BY id FOR SHARE
