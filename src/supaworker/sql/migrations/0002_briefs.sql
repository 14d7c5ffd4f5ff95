-- 0002: briefs (a unit of user work run as one job or a pipeline of jobs), the guard on job dependencies,
-- and the functions that cancel and resume a brief.
-- {{schema}} is replaced by the configured schema name (quoted) when the migration is applied.
--
-- A brief's status is not stored: the view briefs_with_status derives it from the brief's jobs, so it can
-- never disagree with them and the worker's hot path (claim, complete, fail) writes nothing extra.

CREATE TABLE {{schema}}.briefs (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- text, not uuid: applications identify users by Supabase auth uuids, integers or strings alike.
  user_id      text NOT NULL,
  title        text NOT NULL DEFAULT '',
  description  text NOT NULL DEFAULT '',
  query        text NOT NULL,
  media_type   text NOT NULL,
  use_pipeline boolean NOT NULL DEFAULT false,
  -- The job types the brief was created with, in order (a record of the pipeline definition used then).
  pipeline     text[] NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),

  CONSTRAINT briefs_user_id_valid CHECK (length(btrim(user_id)) > 0 AND length(user_id) <= 255),
  CONSTRAINT briefs_title_valid CHECK (length(title) <= 500),
  CONSTRAINT briefs_description_valid CHECK (length(description) <= 20000),
  CONSTRAINT briefs_query_valid CHECK (length(btrim(query)) > 0 AND length(query) <= 20000),
  CONSTRAINT briefs_media_type_valid CHECK (media_type IN ('video', 'image', 'audio', 'text')),
  CONSTRAINT briefs_pipeline_valid CHECK (cardinality(pipeline) >= 1 AND array_position(pipeline, NULL) IS NULL)
);

COMMENT ON TABLE {{schema}}.briefs IS 'supaworker briefs: status and result are derived in briefs_with_status';

CREATE INDEX briefs_user_idx ON {{schema}}.briefs (user_id, created_at DESC);

-- One row per brief with what its jobs say about it:
--   status     failed if any job failed; else cancelled if any was cancelled; else completed when all are;
--              else processing once any job started or completed; else pending
--   result     the result of the brief's last job (one no other job of the brief depends on), once completed
--   failed_*   the first failed job (its type is the step that failed); error is its last error, or the
--              reason of the first cancelled job when the brief was cancelled
CREATE VIEW {{schema}}.briefs_with_status AS
SELECT b.id, b.user_id, b.title, b.description, b.query, b.media_type, b.use_pipeline, b.pipeline,
       CASE WHEN s.total = 0 THEN 'pending'
            WHEN s.failed > 0 THEN 'failed'
            WHEN s.cancelled > 0 THEN 'cancelled'
            WHEN s.completed = s.total THEN 'completed'
            WHEN s.completed > 0 OR s.started > 0 THEN 'processing'
            ELSE 'pending' END AS status,
       CASE WHEN s.total > 0 AND s.completed = s.total THEN (
         SELECT j.result FROM {{schema}}.jobs j
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
      FROM {{schema}}.jobs j
     WHERE j.brief_id = b.id
  ) s
  LEFT JOIN LATERAL (
    SELECT j.id, j.type, j.last_error FROM {{schema}}.jobs j
     WHERE j.brief_id = b.id AND j.status IN ('failed', 'cancelled')
     ORDER BY j.status = 'failed' DESC, j.id
     LIMIT 1
  ) stop ON true;

-- Guards every insert into job_dependencies, whoever makes it (the Python client or plain SQL):
--   * a job gets parents only before it starts (waiting or pending);
--   * a parent that already failed or was cancelled is refused: the child could never run;
--   * no cycle: the new edges must not make a child its own ancestor;
--   * the child's status follows its parents: waiting while any is unfinished, pending once all completed.
-- Parents are locked FOR SHARE first, so a parent completing concurrently either committed before (and is
-- seen completed here) or waits for this transaction (and its unblock_dependents() then sees the child).
CREATE FUNCTION {{schema}}.check_job_dependencies() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_bad record;
  v_cycle bigint;
  v_unblocked integer;
BEGIN
  -- Children first (their status is rewritten below), then parents, each in id order.
  PERFORM 1 FROM {{schema}}.jobs c WHERE c.id IN (SELECT n.job_id FROM new_deps n) ORDER BY c.id FOR UPDATE;
  PERFORM 1 FROM {{schema}}.jobs p
   WHERE p.id IN (SELECT n.depends_on FROM new_deps n) AND p.id NOT IN (SELECT n.job_id FROM new_deps n)
   ORDER BY p.id FOR SHARE;

  SELECT c.id, c.status INTO v_bad
    FROM {{schema}}.jobs c
   WHERE c.id IN (SELECT n.job_id FROM new_deps n) AND c.status NOT IN ('waiting', 'pending')
   ORDER BY c.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'job % is %: dependencies can only be added to a job that has not started', v_bad.id, v_bad.status
      USING ERRCODE = 'check_violation';
  END IF;

  SELECT n.job_id, p.id AS parent_id, p.status INTO v_bad
    FROM new_deps n JOIN {{schema}}.jobs p ON p.id = n.depends_on
   WHERE p.status IN ('failed', 'cancelled')
   ORDER BY n.job_id, p.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'job % cannot depend on job %, which is %', v_bad.job_id, v_bad.parent_id, v_bad.status
      USING ERRCODE = 'check_violation';
  END IF;

  WITH RECURSIVE up(child, id) AS (
    SELECT n.job_id, n.depends_on FROM new_deps n
    UNION
    SELECT u.child, d.depends_on FROM up u JOIN {{schema}}.job_dependencies d ON d.job_id = u.id
  )
  SELECT u.child INTO v_cycle FROM up u WHERE u.id = u.child LIMIT 1;
  IF v_cycle IS NOT NULL THEN
    RAISE EXCEPTION 'dependency cycle: job % would depend on itself', v_cycle USING ERRCODE = 'check_violation';
  END IF;

  UPDATE {{schema}}.jobs c
     SET status = 'waiting'
   WHERE c.id IN (SELECT n.job_id FROM new_deps n) AND c.status = 'pending'
     AND EXISTS (SELECT 1 FROM {{schema}}.job_dependencies d JOIN {{schema}}.jobs p ON p.id = d.depends_on
                  WHERE d.job_id = c.id AND p.status <> 'completed');
  UPDATE {{schema}}.jobs c
     SET status = 'pending', run_at = greatest(c.run_at, now())
   WHERE c.id IN (SELECT n.job_id FROM new_deps n) AND c.status = 'waiting'
     AND NOT EXISTS (SELECT 1 FROM {{schema}}.job_dependencies d JOIN {{schema}}.jobs p ON p.id = d.depends_on
                      WHERE d.job_id = c.id AND p.status <> 'completed');
  GET DIAGNOSTICS v_unblocked = ROW_COUNT;
  IF v_unblocked > 0 THEN
    PERFORM pg_notify({{channel}}, '');
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER job_dependencies_check
  AFTER INSERT ON {{schema}}.job_dependencies
  REFERENCING NEW TABLE AS new_deps
  FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.check_job_dependencies();

-- Redefined from 0001 for one reason: a job whose parent failed or was cancelled must not be retried on its
-- own, or it would wait forever for that parent. It is refused (NULL, like any job that cannot be retried);
-- retrying the parent brings its cancelled dependents back. Otherwise unchanged.
CREATE OR REPLACE FUNCTION {{schema}}.retry_job(p_job_id bigint) RETURNS {{schema}}.job_status
LANGUAGE plpgsql AS $$
DECLARE
  v_status {{schema}}.job_status;
BEGIN
  UPDATE {{schema}}.jobs j
     SET status = CASE WHEN EXISTS (
                    SELECT 1 FROM {{schema}}.job_dependencies d JOIN {{schema}}.jobs p ON p.id = d.depends_on
                     WHERE d.job_id = j.id AND p.status <> 'completed')
                  THEN 'waiting' ELSE 'pending' END::{{schema}}.job_status,
         run_at = now(), completed_at = NULL, worker_id = NULL, lease_expires_at = NULL,
         max_attempts = greatest(j.max_attempts, j.attempts + 1)
   WHERE j.id = p_job_id AND j.status IN ('failed', 'cancelled')
     AND NOT EXISTS (
           SELECT 1 FROM {{schema}}.job_dependencies d JOIN {{schema}}.jobs p ON p.id = d.depends_on
            WHERE d.job_id = j.id AND p.status IN ('failed', 'cancelled'))
  RETURNING j.status INTO v_status;
  IF v_status IS NOT NULL THEN
    WITH RECURSIVE descendants(id) AS (
      SELECT d.job_id FROM {{schema}}.job_dependencies d WHERE d.depends_on = p_job_id
      UNION
      SELECT d.job_id FROM {{schema}}.job_dependencies d JOIN descendants x ON d.depends_on = x.id
    )
    UPDATE {{schema}}.jobs c
       SET status = 'waiting', completed_at = NULL, last_error = NULL
     WHERE c.id IN (SELECT id FROM descendants) AND c.status = 'cancelled'
       AND c.last_error LIKE 'cancelled: %dependency%';
    PERFORM pg_notify({{channel}}, '');
  END IF;
  RETURN v_status;
END $$;

-- Cancels every unfinished job of a brief. Those with no unfinished parent in the brief get p_reason; the
-- rest are cancelled as their dependents, so retrying the brief (or the first cancelled step) brings the
-- whole rest back. Returns how many jobs were cancelled.
CREATE FUNCTION {{schema}}.cancel_brief(p_brief_id uuid, p_reason text DEFAULT 'brief cancelled by request')
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_ids bigint[];
  v_id bigint;
  v_count integer;
BEGIN
  SELECT array_agg(j.id ORDER BY j.id) INTO v_ids FROM (
    SELECT id FROM {{schema}}.jobs
     WHERE brief_id = p_brief_id AND status IN ('waiting', 'pending', 'processing')
     ORDER BY id FOR UPDATE) j;
  IF v_ids IS NULL THEN
    RETURN 0;
  END IF;
  FOR v_id IN
    SELECT c.id FROM {{schema}}.jobs c
     WHERE c.id = ANY (v_ids)
       AND NOT EXISTS (SELECT 1 FROM {{schema}}.job_dependencies d WHERE d.job_id = c.id AND d.depends_on = ANY (v_ids))
     ORDER BY c.id
  LOOP
    PERFORM {{schema}}.cancel_job(v_id, p_reason);
  END LOOP;
  SELECT count(*) INTO v_count FROM {{schema}}.jobs WHERE id = ANY (v_ids) AND status = 'cancelled';
  RETURN v_count;
END $$;

-- Resumes a failed or cancelled brief: retries each of its jobs that failed or was cancelled by itself
-- (not as the dependent of another), which brings their cancelled dependents back to waiting. A job whose
-- parent is still failed is refused by retry_job(), so rounds repeat until none makes progress.
-- Returns how many jobs were retried.
CREATE FUNCTION {{schema}}.retry_brief(p_brief_id uuid) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
  v_round integer;
  v_count integer := 0;
BEGIN
  LOOP
    v_round := 0;
    FOR v_id IN
      SELECT id FROM {{schema}}.jobs
       WHERE brief_id = p_brief_id
         AND (status = 'failed'
              OR (status = 'cancelled' AND coalesce(last_error, '') NOT LIKE 'cancelled: %dependency%'))
       ORDER BY id
    LOOP
      IF {{schema}}.retry_job(v_id) IS NOT NULL THEN
        v_round := v_round + 1;
      END IF;
    END LOOP;
    v_count := v_count + v_round;
    EXIT WHEN v_round = 0;
  END LOOP;
  RETURN v_count;
END $$;
