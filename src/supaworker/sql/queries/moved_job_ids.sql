-- Which of these jobs have moved to job_history (migration 0019).
SELECT id FROM {{schema}}.job_history WHERE id = ANY (%(ids)s::bigint[])
