-- Autovacuum analyzes partitions, never their parent: the planner's statistics of job_history as a whole.
ANALYZE {{schema}}.job_history
