-- The console's job search within failed or cancelled jobs: their ids below %(before_id)s, newest first, from
-- jobs_unsuccessful_id_idx (the literal IN keeps that partial index usable under a generic plan).
SELECT id FROM {{schema}}.jobs
 WHERE status IN ('failed', 'cancelled') AND status = %(status)s::{{schema}}.job_status AND id < %(before_id)s
 ORDER BY status, id DESC
 LIMIT %(scan)s
