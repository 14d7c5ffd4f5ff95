-- A throwaway NOTIFY on a channel of the doctor's own (doctor's LISTEN check).
SELECT pg_notify(%(channel)s, 'ping')
