-- 0014: completions that ride with a worker's start records commit durably again.
--
-- record_job_starts() switched its transaction to an asynchronous commit, which is fine for a start record
-- alone: losing one in a server crash only hands jobs back uncharged. But a worker sends it in one
-- transaction with the completions of its finished jobs and its next claim, and these then committed
-- asynchronously too: a crash of the server within a fraction of a second after such a commit lost
-- completions the worker had been told were written, and those jobs ran again, charged an attempt.
-- record_job_starts() now commits as its caller's transaction does; record_job_starts_alone() keeps the cheap
-- commit for a start record sent in a transaction of its own.

CREATE OR REPLACE FUNCTION {{schema}}.record_job_starts(p_worker_id text, p_through bigint) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  INSERT INTO {{schema}}.worker_starts AS w (worker_id, started_through) VALUES (p_worker_id, p_through)
  ON CONFLICT (worker_id) DO UPDATE
    SET started_through = greatest(w.started_through, excluded.started_through), updated_at = now()
$$
SET jit = off;

-- Only for a transaction that writes nothing else: its commit does not wait for the WAL to reach disk.
CREATE FUNCTION {{schema}}.record_job_starts_alone(p_worker_id text, p_through bigint) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT set_config('synchronous_commit', 'off', true);
  SELECT {{schema}}.record_job_starts(p_worker_id, p_through)
$$
SET jit = off;

INSERT INTO {{schema}}.owned_objects (type, identity)
SELECT o.type, o.identity
  FROM pg_identify_object('pg_proc'::regclass,
                          '{{schema}}.record_job_starts_alone(text, bigint)'::regprocedure, 0) o
ON CONFLICT DO NOTHING;
