-- A worker that found work again, or stopped: enqueues need not notify for it any more.
SELECT {{schema}}.stop_waiting_for_jobs(%(worker_id)s)
