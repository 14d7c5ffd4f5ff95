-- Pauses or resumes a job type or queue for every worker.
SELECT {{schema}}.set_job_paused(%(scope)s, %(name)s, %(paused)s)
