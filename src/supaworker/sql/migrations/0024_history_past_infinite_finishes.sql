-- 0024: moving finished jobs into history goes on past a job finished at '-infinity'.
--
-- Plain SQL can store completed_at = '-infinity'. archive_finished_jobs() took that job first (the oldest)
-- and found no partition for it (history_partition() computes none for an infinite time): every move
-- failed, so with history on nothing was moved or pruned any more. It is redefined from its body in 0019
-- (same signature, result and SET options) with one more condition: such a job is not moved, and stays in
-- jobs where every reader shows it.

CREATE OR REPLACE FUNCTION {{schema}}.archive_finished_jobs(p_older_than_seconds double precision, p_limit integer, p_partition_seconds double precision DEFAULT 86400)
 RETURNS integer
 LANGUAGE plpgsql
 SET jit TO 'off'
AS $function$
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
             -- '-infinity' (plain SQL) has no partition: it stays in jobs rather than stop every move.
             AND isfinite(f.completed_at)
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
END $function$;
