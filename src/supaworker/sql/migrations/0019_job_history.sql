-- 0019: a history of finished jobs, kept out of the queue's table, in partitions by the time they finished.
--
-- Finished jobs stayed in jobs until the pruner deleted them, a batch at a time. A month of history at a
-- million jobs a day is 30 million rows in the table every claim and completion writes, and a DELETE of a
-- million rows a day that autovacuum must then clean up. With history on (SUPAWORKER_HISTORY_AFTER_SECONDS),
-- the workers' leader moves finished jobs into job_history once they are that old: a table partitioned by
-- completed_at, one partition per SUPAWORKER_HISTORY_PARTITION_SECONDS (a day by default), made when the first
-- job of its range arrives; whole partitions are dropped once all of their range is older than
-- SUPAWORKER_HISTORY_RETENTION_SECONDS. The queue's table keeps unfinished and recently finished jobs only.
--
-- A finished job stays in jobs while a job that depends on it is unfinished (its result is still to be
-- handed on), and so does every job of a brief that has an unfinished step. Moved jobs keep their ids; the
-- readers of one job or one brief (get_job, wait_for, briefs_with_status, get_brief, the console's pages)
-- read jobs_with_history, which adds job_history to jobs. What a moved job leaves behind: its unique key
-- (held only by jobs in the queue's table, as before by jobs not yet pruned) and its links to other jobs
-- (job_dependencies rows go with the job). jobs_with_history and job_history add their columns in the same
-- order as jobs: a migration that adds a column to jobs adds it to job_history and remakes the view.

CREATE TABLE {{schema}}.job_history (LIKE {{schema}}.jobs) PARTITION BY RANGE (completed_at);
COMMENT ON TABLE {{schema}}.job_history IS
  'finished jobs moved out of jobs, one partition per range of completed_at (see migration 0019)';
CREATE INDEX job_history_id_idx ON {{schema}}.job_history (id);
CREATE INDEX job_history_brief_idx ON {{schema}}.job_history (brief_id) WHERE brief_id IS NOT NULL;

CREATE VIEW {{schema}}.jobs_with_history AS
SELECT * FROM {{schema}}.jobs
UNION ALL
SELECT * FROM {{schema}}.job_history;

-- job_history's partitions and the range of completion times each holds.
CREATE FUNCTION {{schema}}.history_ranges() RETURNS TABLE (name regclass, starts_at timestamptz, ends_at timestamptz)
LANGUAGE sql
STABLE
AS $$
  SELECT c.oid::regclass,
         (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz,
         (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
   WHERE i.inhparent = '{{schema}}.job_history'::regclass
$$;

-- The partition of job_history whose range holds p_at, made (and secured like every table supaworker owns)
-- when there is none. A new range is p_seconds long, aligned on the Unix epoch, and cut short where it would
-- overlap a partition made with another length (SUPAWORKER_HISTORY_PARTITION_SECONDS changed). Making one
-- locks job_history, so it waits for its readers at most lock_timeout (the move is tried again later) rather
-- than holding every later reader of one job or brief behind it.
CREATE FUNCTION {{schema}}.history_partition(p_at timestamptz, p_seconds double precision) RETURNS regclass
LANGUAGE plpgsql
SET lock_timeout = '5s'
AS $$
DECLARE
  v_from timestamptz := to_timestamp(floor(extract(epoch FROM p_at) / p_seconds) * p_seconds);
  v_to timestamptz := v_from + make_interval(secs => p_seconds);
  v_schema text := (parse_ident('{{schema}}'))[1];
  v_name text;
  v_table regclass;
  v_range record;
BEGIN
  IF p_seconds IS NULL OR NOT p_seconds >= 1 THEN
    RAISE EXCEPTION 'a history partition spans at least 1 second, not %', p_seconds
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR v_range IN SELECT * FROM {{schema}}.history_ranges() LOOP
    IF v_range.starts_at <= p_at AND p_at < v_range.ends_at THEN
      RETURN v_range.name;
    END IF;
    IF v_range.ends_at > v_from AND v_range.ends_at <= p_at THEN
      v_from := v_range.ends_at;
    END IF;
    IF v_range.starts_at < v_to AND v_range.starts_at > p_at THEN
      v_to := v_range.starts_at;
    END IF;
  END LOOP;
  v_name := 'job_history_' || to_char(v_from AT TIME ZONE 'UTC', 'YYYYMMDD"_"HH24MISS');
  BEGIN
    EXECUTE format('CREATE TABLE %I.%I PARTITION OF {{schema}}.job_history FOR VALUES FROM (%L) TO (%L)',
                   v_schema, v_name, v_from, v_to);
  EXCEPTION WHEN duplicate_table OR unique_violation THEN
    RETURN format('%I.%I', v_schema, v_name)::regclass;  -- another mover made it meanwhile
  END;
  v_table := format('%I.%I', v_schema, v_name)::regclass;
  INSERT INTO {{schema}}.owned_objects (type, identity)
  SELECT o.type, o.identity FROM pg_identify_object('pg_class'::regclass, v_table, 0) o
  ON CONFLICT DO NOTHING;
  PERFORM {{schema}}.secure_schema();
  RETURN v_table;
END $$;

-- Moves up to p_limit jobs finished more than p_older_than_seconds ago (oldest first) from jobs into
-- job_history; returns how many it moved. SKIP LOCKED: a job being retried or read for update stays for the
-- next batch, and two callers never take the same jobs.
CREATE FUNCTION {{schema}}.archive_finished_jobs(
  p_older_than_seconds double precision,
  p_limit integer,
  p_partition_seconds double precision DEFAULT 86400
) RETURNS integer
LANGUAGE plpgsql
SET jit = off
AS $$
DECLARE
  v_ids bigint[];
  v_at timestamptz;
  v_made integer := 0;
  v_count integer;
BEGIN
  SELECT array_agg(f.id ORDER BY f.id) INTO v_ids
    FROM (SELECT f.id FROM {{schema}}.jobs f
           WHERE f.status IN ('completed', 'failed', 'cancelled')
             AND f.completed_at < now() - make_interval(secs => p_older_than_seconds)
             AND NOT EXISTS (
                   SELECT 1 FROM {{schema}}.job_dependencies d JOIN {{schema}}.jobs c ON c.id = d.job_id
                    WHERE d.depends_on = f.id AND c.status IN ('waiting', 'pending', 'processing'))
             AND (f.brief_id IS NULL OR NOT EXISTS (
                   SELECT 1 FROM {{schema}}.jobs s
                    WHERE s.brief_id = f.brief_id AND s.status IN ('waiting', 'pending', 'processing')))
           ORDER BY f.completed_at
           LIMIT p_limit
             FOR UPDATE SKIP LOCKED) f;
  IF v_ids IS NULL THEN
    RETURN 0;
  END IF;
  -- A partition for the earliest job of the batch that has none, until every one has one (one per range).
  LOOP
    SELECT min(j.completed_at) INTO v_at
      FROM {{schema}}.jobs j
     WHERE j.id = ANY (v_ids)
       AND NOT EXISTS (SELECT 1 FROM {{schema}}.history_ranges() r
                        WHERE r.starts_at <= j.completed_at AND j.completed_at < r.ends_at);
    EXIT WHEN v_at IS NULL;
    v_made := v_made + 1;
    IF v_made > cardinality(v_ids) THEN  -- each round covers at least one job: never, but never a spin either
      RAISE EXCEPTION 'no partition of job_history takes the job finished at %', v_at;
    END IF;
    PERFORM {{schema}}.history_partition(v_at, p_partition_seconds);
  END LOOP;
  WITH moved AS (DELETE FROM {{schema}}.jobs j WHERE j.id = ANY (v_ids) RETURNING j.*)
  INSERT INTO {{schema}}.job_history SELECT * FROM moved;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END $$;

-- Drops every partition of job_history whose whole range ended more than p_older_than_seconds ago; returns
-- their names. A DROP waits for readers of job_history (never for the queue's claims), at most lock_timeout.
CREATE FUNCTION {{schema}}.drop_history_partitions(p_older_than_seconds double precision) RETURNS SETOF text
LANGUAGE plpgsql
SET lock_timeout = '5s'
AS $$
DECLARE
  v_partition record;
  v_name text;
BEGIN
  FOR v_partition IN SELECT r.name, r.ends_at FROM {{schema}}.history_ranges() r ORDER BY r.starts_at LOOP
    CONTINUE WHEN v_partition.ends_at > now() - make_interval(secs => p_older_than_seconds);
    DELETE FROM {{schema}}.owned_objects o
     USING pg_identify_object('pg_class'::regclass, v_partition.name, 0) i
     WHERE o.type = i.type AND o.identity = i.identity;
    v_name := v_partition.name::text;  -- its name, while it still has one
    EXECUTE format('DROP TABLE %s', v_partition.name);
    RETURN NEXT v_name;
  END LOOP;
END $$;

CREATE OR REPLACE FUNCTION {{schema}}.get_job(job_id bigint) RETURNS jsonb
LANGUAGE sql
STABLE
AS $$
  SELECT coalesce(
    (SELECT {{schema}}.job_document(j) FROM {{schema}}.jobs j WHERE j.id = get_job.job_id),
    -- A moved job's links went with it (job_dependencies holds those of jobs in the queue's table).
    (SELECT to_jsonb(h) || jsonb_build_object('depends_on', '[]'::jsonb)
       FROM {{schema}}.job_history h WHERE h.id = get_job.job_id LIMIT 1))
$$;

CREATE OR REPLACE FUNCTION {{schema}}.brief_document(p_brief_id uuid, p_steps boolean DEFAULT true) RETURNS jsonb
LANGUAGE sql
STABLE
AS $$
  SELECT to_jsonb(b) || CASE WHEN p_steps THEN jsonb_build_object('steps', coalesce(
           (SELECT jsonb_agg(to_jsonb(j) || jsonb_build_object('depends_on', coalesce(
                      (SELECT jsonb_agg(d.depends_on ORDER BY d.depends_on) FROM {{schema}}.job_dependencies d
                        WHERE d.job_id = j.id), '[]'::jsonb)) ORDER BY j.id)
              FROM {{schema}}.jobs_with_history j
             WHERE j.brief_id = b.id), '[]'::jsonb))
         ELSE '{}'::jsonb END
    FROM {{schema}}.briefs_with_status b
   WHERE b.id = p_brief_id
$$;

CREATE OR REPLACE VIEW {{schema}}.briefs_with_status AS
SELECT b.id, b.user_id, b.title, b.description, b.query, b.media_type, b.use_pipeline, b.pipeline,
       CASE WHEN s.total = 0 THEN 'pending'
            WHEN s.failed > 0 THEN 'failed'
            WHEN s.cancelled > 0 THEN 'cancelled'
            WHEN s.completed = s.total THEN 'completed'
            WHEN s.completed > 0 OR s.started > 0 THEN 'processing'
            ELSE 'pending' END AS status,
       CASE WHEN s.total > 0 AND s.completed = s.total THEN (
         SELECT j.result FROM {{schema}}.jobs_with_history j
          WHERE j.brief_id = b.id
            AND NOT EXISTS (SELECT 1 FROM {{schema}}.job_dependencies d
                              JOIN {{schema}}.jobs c ON c.id = d.job_id
                             WHERE d.depends_on = j.id AND c.brief_id = b.id)
          ORDER BY j.id DESC LIMIT 1) END AS result,
       CASE WHEN s.failed > 0 THEN stop.type END AS failed_step,
       CASE WHEN s.failed > 0 THEN stop.id END AS failed_job_id,
       CASE WHEN s.failed > 0 OR s.cancelled > 0 THEN stop.last_error END AS error,
       s.total AS steps_total,
       s.completed AS steps_completed,
       b.created_at,
       s.started_at,
       greatest(b.created_at, s.updated_at) AS updated_at,
       CASE WHEN s.total > 0 AND s.completed + s.failed + s.cancelled = s.total
              OR s.failed > 0 OR s.cancelled > 0 THEN s.finished_at END AS completed_at
  FROM {{schema}}.briefs b
  CROSS JOIN LATERAL (
    SELECT count(*) AS total,
           count(*) FILTER (WHERE j.status = 'completed') AS completed,
           count(*) FILTER (WHERE j.status = 'failed') AS failed,
           count(*) FILTER (WHERE j.status = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE j.status = 'processing' OR j.attempts > 0) AS started,
           min(j.started_at) AS started_at,
           max(greatest(j.created_at, j.started_at, j.completed_at)) AS updated_at,
           max(j.completed_at) AS finished_at
      FROM {{schema}}.jobs_with_history j
     WHERE j.brief_id = b.id
  ) s
  LEFT JOIN LATERAL (
    SELECT j.id, j.type, j.last_error FROM {{schema}}.jobs_with_history j
     WHERE j.brief_id = b.id AND j.status IN ('failed', 'cancelled')
     ORDER BY j.status = 'failed' DESC, j.id
     LIMIT 1
  ) stop ON true;

-- The message for a parent that is not in jobs names where it may have gone (dependencies.check_parents in
-- Python says the same): a job cannot depend on a moved one, whose result no longer reaches its dependents.
CREATE OR REPLACE FUNCTION {{schema}}.check_parents(p_label text, p_ids bigint[]) RETURNS {{schema}}.job_status
LANGUAGE plpgsql
AS $$
DECLARE
  v_ids bigint[];
  v_statuses {{schema}}.job_status[];
  v_unknown text;
  v_dead text;
BEGIN
  SELECT array_agg(l.id), array_agg(l.status) INTO v_ids, v_statuses FROM (
    SELECT j.id, j.status FROM {{schema}}.jobs j WHERE j.id = ANY (p_ids) ORDER BY j.id FOR SHARE) l;
  SELECT string_agg(p::text, ', ' ORDER BY o) INTO v_unknown
    FROM unnest(p_ids) WITH ORDINALITY AS x(p, o) WHERE p <> ALL (coalesce(v_ids, '{}'));
  IF v_unknown IS NOT NULL THEN
    PERFORM {{schema}}.raise_invalid(format(
      '%s depends on unknown job id(s) %s (not in the queue: never made, pruned, or finished and moved to history)',
      p_label, v_unknown));
  END IF;
  SELECT string_agg(format('job %s is %s', x.p, s.status), ', ' ORDER BY x.o) INTO v_dead
    FROM unnest(p_ids) WITH ORDINALITY AS x(p, o)
    JOIN unnest(v_ids, v_statuses) AS s(id, status) ON s.id = x.p
   WHERE s.status IN ('failed', 'cancelled');
  IF v_dead IS NOT NULL THEN
    PERFORM {{schema}}.raise_invalid(format('%s cannot depend on a job that will never complete: %s', p_label, v_dead));
  END IF;
  RETURN CASE WHEN 'completed' = ALL (coalesce(v_statuses, '{}')) THEN 'pending' ELSE 'waiting' END;
END $$;

INSERT INTO {{schema}}.owned_objects (type, identity)
SELECT o.type, o.identity
  FROM unnest(ARRAY['{{schema}}.job_history'::regclass, '{{schema}}.jobs_with_history'::regclass]) r
 CROSS JOIN LATERAL pg_identify_object('pg_class'::regclass, r, 0) o
UNION ALL
SELECT o.type, o.identity
  FROM unnest(ARRAY[
         '{{schema}}.history_ranges()'::regprocedure,
         '{{schema}}.history_partition(timestamptz, double precision)'::regprocedure,
         '{{schema}}.archive_finished_jobs(double precision, integer, double precision)'::regprocedure,
         '{{schema}}.drop_history_partitions(double precision)'::regprocedure]) p
 CROSS JOIN LATERAL pg_identify_object('pg_proc'::regclass, p, 0) o
ON CONFLICT DO NOTHING;
