-- 0012: an enqueue sends its NOTIFY only when a worker is waiting for one.
--
-- A transaction that sent a NOTIFY takes one database-wide lock at commit, so concurrent enqueuers (and
-- everything else that notifies) commit one at a time: with 16 producers, 12-13 sessions waited on it. Only a
-- worker blocked on an empty queue needs the hint; a busy worker claims again as its slots free up. So a
-- worker whose claim came back empty says so here (and claims once more, so that a job inserted just before
-- it said so is not missed), and says it no longer waits once a claim finds work. The insert trigger notifies
-- only while some worker waits. A row holds for two poll intervals and is renewed at each poll, so the row of
-- a worker that died stops drawing NOTIFYs by itself.
--
-- Workers of the previous release never register here: while they run beside this release, enqueues do not
-- wake them, and they find new jobs at their next poll (WORKER_POLL_INTERVAL_MS, 1 s by default).

-- Unlogged: a transient fact about live workers, not worth a WAL record or surviving a crash.
CREATE UNLOGGED TABLE {{schema}}.waiting_workers (
  worker_id text PRIMARY KEY,
  until     timestamptz NOT NULL
) WITH (fillfactor = 50);
COMMENT ON TABLE {{schema}}.waiting_workers IS
  'workers blocked on an empty queue until a NOTIFY: an insert into jobs notifies only while one is here';

CREATE FUNCTION {{schema}}.wait_for_jobs(p_worker_id text, p_seconds double precision) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  INSERT INTO {{schema}}.waiting_workers AS w (worker_id, until)
  VALUES (p_worker_id, now() + make_interval(secs => p_seconds))
  ON CONFLICT (worker_id) DO UPDATE SET until = excluded.until
$$
SET jit = off;

CREATE FUNCTION {{schema}}.stop_waiting_for_jobs(p_worker_id text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  DELETE FROM {{schema}}.waiting_workers WHERE worker_id = p_worker_id
$$
SET jit = off;

-- Runs as its owner, so that whoever inserts jobs needs no access to waiting_workers. Every name in it is
-- schema-qualified (the operator too), so no search_path of the caller's can change what it runs; it sets none
-- itself because a function with SET options costs every enqueue a settings switch (4 us of 40).
CREATE OR REPLACE FUNCTION {{schema}}.notify_jobs_inserted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM {{schema}}.waiting_workers w WHERE w.until OPERATOR(pg_catalog.>) pg_catalog.now()) THEN
    PERFORM pg_catalog.pg_notify({{channel}}, '');
  END IF;
  RETURN NULL;
END $$;

INSERT INTO {{schema}}.owned_objects (type, identity)
SELECT o.type, o.identity
  FROM pg_identify_object('pg_class'::regclass, '{{schema}}.waiting_workers'::regclass, 0) o
UNION ALL
SELECT o.type, o.identity
  FROM unnest(ARRAY['{{schema}}.wait_for_jobs(text, double precision)'::regprocedure,
                    '{{schema}}.stop_waiting_for_jobs(text)'::regprocedure]) f
 CROSS JOIN LATERAL pg_identify_object('pg_proc'::regclass, f, 0) o
ON CONFLICT DO NOTHING;
