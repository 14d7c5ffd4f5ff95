-- Every schedule, with the database clock the scheduler computes due ticks against.
SELECT p.*, now() AS db_now FROM {{schema}}.periodic_jobs p ORDER BY p.name
