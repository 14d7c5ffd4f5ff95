-- The console's job search, widest way in: ids below %(before_id)s, newest first, walking the primary key
-- backwards and stopping after %(scan)s of them, whatever the table holds.
SELECT id FROM {{schema}}.jobs
 WHERE id < %(before_id)s
 ORDER BY id DESC
 LIMIT %(scan)s
