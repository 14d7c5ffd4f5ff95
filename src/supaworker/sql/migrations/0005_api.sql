-- 0005: indexes that keep the API's change feed, metrics and dashboard bounded on a big jobs table.
-- Each one serves a query that reads only recent or unfinished rows, never the whole history.

-- Jobs by when they finished: the change feed reads only those finished since its last look.
CREATE INDEX jobs_completed_at_idx ON {{schema}}.jobs (completed_at) WHERE completed_at IS NOT NULL;

-- Failures and cancellations, newest first: few rows, however many completed ones the table holds.
CREATE INDEX jobs_unsuccessful_idx ON {{schema}}.jobs (completed_at DESC) WHERE status IN ('failed', 'cancelled');

-- Jobs blocked on their dependencies, counted by the dashboard.
CREATE INDEX jobs_waiting_idx ON {{schema}}.jobs (id) WHERE status = 'waiting';

-- Briefs newest first: the dashboard's briefs panel and `GET /api/briefs` read only the first few.
CREATE INDEX briefs_created_idx ON {{schema}}.briefs (created_at DESC, id);
