-- 0018: a worker's claim no longer walks the backlog of types and queues it does not run; a job's start time
-- is the claim's own.
--
-- A worker names its types (by default the ones it has handlers for), and may name its queues. Its claim
-- scanned jobs_claim_idx in claim order and skipped, row by row, every pending job of other types or queues
-- ahead of its own: with 300,000 jobs of a type handled elsewhere (or of another queue) queued before 1,000 of
-- its own, each claim of 10 took 52-60 ms instead of 0.6, and more as that backlog grew. 0017 started the
-- scan where the worker's own types begin only when one of them was limited or paused; now every claim that
-- names its types or queues starts at the later of where they begin, the queues' read from the new index
-- jobs_queue_claim_idx (sql/schema.sql); so do the fair-share claims (several tenants waiting), tenant by
-- tenant, and the free part of claims under limits or pauses. Claims of every type and queue are as before,
-- and a limited type's jobs are still read from jobs_type_claim_idx, past that type's jobs in other queues.
--
-- started_at was now(): the start of the claim's transaction, which a worker's pipeline begins with its
-- completions. A parent's completion committing in between left its child started before it completed.

CREATE INDEX jobs_queue_claim_idx ON {{schema}}.jobs (queue, priority, run_at, id) WHERE status = 'pending';

CREATE OR REPLACE FUNCTION {{schema}}.claim_jobs_v2(p_worker_id text, p_types text[] DEFAULT NULL::text[], p_limit integer DEFAULT 1, p_lease_seconds double precision DEFAULT 30, p_queues text[] DEFAULT NULL::text[], p_start integer DEFAULT NULL::integer, p_seq_base bigint DEFAULT 0)
 RETURNS SETOF {{schema}}.jobs
 LANGUAGE plpgsql
 SET enable_sort TO 'off'
 SET enable_seqscan TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $$
DECLARE
  v_ids bigint[];
  v_paused_types text[] := '{}';
  v_paused_queues text[] := '{}';
  v_limited text[] := '{}';
  v_allowed integer[] := '{}';
  v_any_free boolean := true;
  v_controls boolean;
  v_first text;
  v_last text;
  v_keys text[];
  v_rated boolean := false;
  v_from_priority integer;
  v_from_run_at timestamptz;
  v_from_id bigint;
  v_queue_priority integer;
  v_queue_run_at timestamptz;
  v_queue_id bigint;
BEGIN
  v_controls := EXISTS (
    SELECT 1 FROM {{schema}}.job_controls k
     WHERE (k.scope = 'type' AND (p_types IS NULL OR k.name = ANY (p_types)))
        OR (k.scope = 'queue' AND (p_queues IS NULL OR k.name = ANY (p_queues))));

  -- Tenants with jobs queued: two probes tell one from several (the common case stays the plain path).
  SELECT c.fairness_key INTO v_first FROM {{schema}}.jobs c
   WHERE c.status = 'pending' ORDER BY c.fairness_key LIMIT 1;
  IF FOUND THEN
    SELECT c.fairness_key INTO v_last FROM {{schema}}.jobs c
     WHERE c.status = 'pending' ORDER BY c.fairness_key DESC LIMIT 1;
  END IF;
  IF v_first IS DISTINCT FROM v_last THEN
    v_keys := ARRAY(
      WITH RECURSIVE k(key) AS (
        SELECT v_first
        UNION ALL
        SELECT (SELECT c.fairness_key FROM {{schema}}.jobs c
                 WHERE c.status = 'pending' AND c.fairness_key > k.key ORDER BY c.fairness_key LIMIT 1)
          FROM k WHERE k.key IS NOT NULL)
      SELECT k.key FROM k WHERE k.key IS NOT NULL LIMIT 1001);
    IF cardinality(v_keys) > 1000 THEN
      -- More tenants than one claim looks at: 1000 of them from a random point of the key order onwards (and
      -- round to its start), so that over many claims each is looked at.
      v_keys := ARRAY(
        WITH RECURSIVE k(key, n) AS (
          SELECT coalesce(
                   (SELECT c.fairness_key FROM {{schema}}.jobs c
                     WHERE c.status = 'pending' AND c.fairness_key >= md5(random()::text)
                     ORDER BY c.fairness_key LIMIT 1), v_first), 1
          UNION ALL
          SELECT coalesce(
                   (SELECT c.fairness_key FROM {{schema}}.jobs c
                     WHERE c.status = 'pending' AND c.fairness_key > k.key ORDER BY c.fairness_key LIMIT 1),
                   v_first), k.n + 1
            FROM k WHERE k.n < 1000)
        SELECT DISTINCT k.key FROM k);
    END IF;
  END IF;

  IF v_controls THEN
    SELECT coalesce(array_agg(k.name) FILTER (WHERE k.scope = 'type' AND k.paused), '{}'),
           coalesce(array_agg(k.name) FILTER (WHERE k.scope = 'queue' AND k.paused), '{}')
      INTO v_paused_types, v_paused_queues
      FROM {{schema}}.job_controls k
     WHERE k.paused;

    PERFORM 1 FROM {{schema}}.job_controls k
     WHERE k.scope = 'type' AND NOT k.paused AND (k.max_running IS NOT NULL OR k.rate_limit IS NOT NULL)
       AND (p_types IS NULL OR k.name = ANY (p_types))
     ORDER BY k.name
       FOR UPDATE;

    SELECT coalesce(array_agg(k.name ORDER BY k.name), '{}'),
           coalesce(array_agg(greatest(0, least(
             p_limit,
             k.max_running - (SELECT count(*) FROM {{schema}}.jobs r
                               WHERE r.type = k.name AND r.status = 'processing'),
             CASE WHEN k.window_started_at IS NULL
                    OR k.window_started_at + make_interval(secs => k.rate_period_seconds) <= now()
                  THEN k.rate_limit ELSE k.rate_limit - k.window_count END)) ORDER BY k.name), '{}'),
           coalesce(bool_or(k.rate_limit IS NOT NULL), false)
      INTO v_limited, v_allowed, v_rated
      FROM {{schema}}.job_controls k
     WHERE k.scope = 'type' AND NOT k.paused AND (k.max_running IS NOT NULL OR k.rate_limit IS NOT NULL)
       AND (p_types IS NULL OR k.name = ANY (p_types));

    -- When every type asked for is limited or paused, the unlimited part has nothing to find: skip it
    -- rather than walk every pending job of those types (a drain with a limit set ran at a quarter speed).
    v_any_free := p_types IS NULL
      OR EXISTS (SELECT 1 FROM unnest(p_types) t WHERE t <> ALL (v_limited) AND t <> ALL (v_paused_types));
  END IF;

  -- Where the jobs the claim's scans may take begin in claim order: none comes before the first job of any of
  -- its free types (named, neither limited nor paused; read unlocked from jobs_type_claim_idx), nor before the
  -- first job of any of its queues (jobs_queue_claim_idx). The scans of jobs_claim_idx and jobs_fair_claim_idx
  -- start at the later of the two, so the backlog ahead of it (of types and queues not named, limited or
  -- paused) is skipped by the index rather than walked row by row, and they still lock only the rows they
  -- take. Without named types or queues everything may be taken (the lowest key); a claim of one type without
  -- controls reads jobs_type_claim_idx alone. (The type is bounded on both sides rather than compared with =,
  -- and the order names it: with = the planner drops the type from the order and, from statistics that saw one
  -- type, prefers walking jobs_claim_idx, which is the walk this avoids. Likewise the queue.)
  v_from_priority := -2147483648;
  v_from_run_at := '-infinity';
  v_from_id := -9223372036854775808;
  IF p_types IS NOT NULL
     AND NOT (v_keys IS NULL AND NOT v_controls AND cardinality(p_types) = 1 AND p_queues IS NULL) THEN
    SELECT h.priority, h.run_at, h.id INTO v_from_priority, v_from_run_at, v_from_id
      FROM (SELECT DISTINCT t.type FROM unnest(p_types) AS t(type)
             WHERE t.type <> ALL (v_limited) AND t.type <> ALL (v_paused_types)) AS a
     CROSS JOIN LATERAL (
           SELECT c.priority, c.run_at, c.id FROM {{schema}}.jobs c
            WHERE c.status = 'pending'
              AND c.type >= a.type AND c.type <= a.type
              AND c.run_at <= now()
            ORDER BY c.type, c.priority, c.run_at, c.id
            LIMIT 1) h
     ORDER BY h.priority, h.run_at, h.id
     LIMIT 1;
  END IF;
  IF p_queues IS NOT NULL AND v_from_id IS NOT NULL THEN
    SELECT h.priority, h.run_at, h.id INTO v_queue_priority, v_queue_run_at, v_queue_id
      FROM (SELECT DISTINCT q.queue FROM unnest(p_queues) AS q(queue)) AS a
     CROSS JOIN LATERAL (
           SELECT c.priority, c.run_at, c.id FROM {{schema}}.jobs c
            WHERE c.status = 'pending'
              AND c.queue >= a.queue AND c.queue <= a.queue
              AND c.run_at <= now()
            ORDER BY c.queue, c.priority, c.run_at, c.id
            LIMIT 1) h
     ORDER BY h.priority, h.run_at, h.id
     LIMIT 1;
    IF v_queue_id IS NULL
       OR (v_queue_priority, v_queue_run_at, v_queue_id) > (v_from_priority, v_from_run_at, v_from_id) THEN
      v_from_priority := v_queue_priority;
      v_from_run_at := v_queue_run_at;
      v_from_id := v_queue_id;
    END IF;
  END IF;

  IF v_keys IS NULL AND NOT v_controls AND p_types IS NULL AND p_queues IS NULL THEN
    v_ids := ARRAY(
      SELECT c.id FROM {{schema}}.jobs c
       WHERE c.status = 'pending'
         AND c.run_at <= now()
         AND (p_types IS NULL OR c.type = ANY (p_types))
         AND (p_queues IS NULL OR c.queue = ANY (p_queues))
       ORDER BY c.priority, c.run_at, c.id
       LIMIT p_limit
         FOR UPDATE SKIP LOCKED);
  ELSIF v_keys IS NULL AND NOT v_controls AND cardinality(p_types) = 1 AND p_queues IS NULL THEN
    -- One type: its jobs in claim order are a range of jobs_type_claim_idx.
    v_ids := ARRAY(
      SELECT c.id FROM {{schema}}.jobs c
       WHERE c.status = 'pending'
         AND c.type >= p_types[1] AND c.type <= p_types[1]
         AND c.run_at <= now()
       ORDER BY c.type, c.priority, c.run_at, c.id
       LIMIT p_limit
         FOR UPDATE SKIP LOCKED);
  ELSIF v_keys IS NULL AND NOT v_controls THEN
    -- Named types, queues or both: the scan starts where the first job the claim may take can be (above).
    v_ids := ARRAY(
      SELECT c.id FROM {{schema}}.jobs c
       WHERE c.status = 'pending'
         AND (c.priority, c.run_at, c.id) >= (v_from_priority, v_from_run_at, v_from_id)
         AND c.run_at <= now()
         AND (p_types IS NULL OR c.type = ANY (p_types))
         AND (p_queues IS NULL OR c.queue = ANY (p_queues))
         AND v_from_id IS NOT NULL
       ORDER BY c.priority, c.run_at, c.id
       LIMIT p_limit
         FOR UPDATE SKIP LOCKED);
  ELSIF v_keys IS NULL AND p_types IS NOT NULL THEN
    -- Under limits or pauses: the free types from where they begin (above), each limited type within its limit.
    v_ids := ARRAY(
      WITH free AS (
        SELECT c.id, c.priority, c.run_at FROM {{schema}}.jobs c
         WHERE c.status = 'pending'
           AND (c.priority, c.run_at, c.id) >= (v_from_priority, v_from_run_at, v_from_id)
           AND c.run_at <= now()
           AND c.type = ANY (p_types)
           AND (p_queues IS NULL OR c.queue = ANY (p_queues))
           AND c.type <> ALL (v_limited) AND c.type <> ALL (v_paused_types) AND c.queue <> ALL (v_paused_queues)
           AND v_from_id IS NOT NULL
         ORDER BY c.priority, c.run_at, c.id
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
      ), limited AS (
        SELECT l.id, l.priority, l.run_at
          FROM unnest(v_limited, v_allowed) AS a(type, allowed)
         CROSS JOIN LATERAL (
               SELECT c.id, c.priority, c.run_at FROM {{schema}}.jobs c
                WHERE c.status = 'pending'
                  AND c.type >= a.type AND c.type <= a.type
                  AND c.run_at <= now()
                  AND (p_queues IS NULL OR c.queue = ANY (p_queues))
                  AND c.queue <> ALL (v_paused_queues)
                ORDER BY c.type, c.priority, c.run_at, c.id
                LIMIT a.allowed
                  FOR UPDATE SKIP LOCKED) l
         WHERE a.allowed > 0
      )
      SELECT u.id FROM (SELECT * FROM free UNION ALL SELECT * FROM limited) u
       ORDER BY u.priority, u.run_at, u.id
       LIMIT p_limit);
  ELSIF v_keys IS NULL THEN
    v_ids := ARRAY(
      WITH free AS (
        SELECT c.id, c.priority, c.run_at FROM {{schema}}.jobs c
         WHERE c.status = 'pending'
           AND (c.priority, c.run_at, c.id) >= (v_from_priority, v_from_run_at, v_from_id)
           AND c.run_at <= now()
           AND (p_types IS NULL OR c.type = ANY (p_types))
           AND (p_queues IS NULL OR c.queue = ANY (p_queues))
           AND c.type <> ALL (v_limited) AND c.type <> ALL (v_paused_types) AND c.queue <> ALL (v_paused_queues)
           AND v_any_free
         ORDER BY c.priority, c.run_at, c.id
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
      ), limited AS (
        SELECT l.id, l.priority, l.run_at
          FROM unnest(v_limited, v_allowed) AS a(type, allowed)
         CROSS JOIN LATERAL (
               SELECT c.id, c.priority, c.run_at FROM {{schema}}.jobs c
                WHERE c.status = 'pending'
                  AND c.run_at <= now()
                  AND c.type = a.type
                  AND (p_queues IS NULL OR c.queue = ANY (p_queues))
                  AND c.queue <> ALL (v_paused_queues)
                ORDER BY c.priority, c.run_at, c.id
                LIMIT a.allowed
                  FOR UPDATE SKIP LOCKED) l
         WHERE a.allowed > 0
      )
      SELECT u.id FROM (SELECT * FROM free UNION ALL SELECT * FROM limited) u
       ORDER BY u.priority, u.run_at, u.id
       LIMIT p_limit);
  ELSE
    -- The shares: each tenant's, in a random order weighted by weight; only as many tenants as the batch needs.
    v_ids := ARRAY(
      WITH tenant AS (
        SELECT k.key, coalesce(w.weight, 1) AS weight, -ln(1.0 - random()) / coalesce(w.weight, 1) AS draw
          FROM unnest(v_keys) AS k(key)
          LEFT JOIN {{schema}}.fairness_weights w ON w.key = k.key
      ), share AS (
        SELECT t.key, t.draw, ceil(p_limit::numeric * t.weight / sum(t.weight) OVER ())::integer AS quota
          FROM tenant t
      ), turn AS (
        SELECT s.key, s.draw, s.quota, sum(s.quota) OVER (ORDER BY s.draw) - s.quota AS before
          FROM share s
      )
      SELECT p.id FROM turn t
       CROSS JOIN LATERAL (
             SELECT c.id, c.priority, c.run_at FROM {{schema}}.jobs c
              WHERE c.status = 'pending'
                -- The tenant's jobs from where the claim's may begin: a range of jobs_fair_claim_idx whose start
                -- the index finds (with fairness_key = t.key it would walk the tenant's jobs up to it instead).
                AND (c.fairness_key, c.priority, c.run_at, c.id) >= (t.key, v_from_priority, v_from_run_at, v_from_id)
                AND c.fairness_key <= t.key
                AND c.run_at <= now()
                AND (p_types IS NULL OR c.type = ANY (p_types))
                AND (p_queues IS NULL OR c.queue = ANY (p_queues))
                AND c.type <> ALL (v_limited) AND c.type <> ALL (v_paused_types)
                AND c.queue <> ALL (v_paused_queues)
              ORDER BY c.fairness_key, c.priority, c.run_at, c.id
              LIMIT t.quota
                FOR UPDATE SKIP LOCKED) p
       WHERE t.before < p_limit AND v_any_free
       ORDER BY t.draw, p.priority, p.run_at, p.id
       LIMIT p_limit);
    -- What the shares left: in plain claim order (work-conserving), then the limited types within their limits.
    IF cardinality(v_ids) < p_limit AND v_any_free THEN
      v_ids := v_ids || ARRAY(
        SELECT c.id FROM {{schema}}.jobs c
         WHERE c.status = 'pending'
           AND (c.priority, c.run_at, c.id) >= (v_from_priority, v_from_run_at, v_from_id)
           AND c.run_at <= now()
           AND (p_types IS NULL OR c.type = ANY (p_types))
           AND (p_queues IS NULL OR c.queue = ANY (p_queues))
           AND c.type <> ALL (v_limited) AND c.type <> ALL (v_paused_types) AND c.queue <> ALL (v_paused_queues)
           AND c.id <> ALL (v_ids)
         ORDER BY c.priority, c.run_at, c.id
         LIMIT p_limit - cardinality(v_ids)
           FOR UPDATE SKIP LOCKED);
    END IF;
    IF cardinality(v_ids) < p_limit AND cardinality(v_limited) > 0 THEN
      v_ids := v_ids || ARRAY(
        SELECT l.id
          FROM unnest(v_limited, v_allowed) AS a(type, allowed)
         CROSS JOIN LATERAL (
               SELECT c.id, c.priority, c.run_at FROM {{schema}}.jobs c
                WHERE c.status = 'pending'
                  AND c.run_at <= now()
                  AND c.type = a.type
                  AND (p_queues IS NULL OR c.queue = ANY (p_queues))
                  AND c.queue <> ALL (v_paused_queues)
                ORDER BY c.priority, c.run_at, c.id
                LIMIT a.allowed
                  FOR UPDATE SKIP LOCKED) l
         WHERE a.allowed > 0
         ORDER BY l.priority, l.run_at, l.id
         LIMIT p_limit - cardinality(v_ids));
    END IF;
  END IF;

  IF v_rated AND cardinality(v_ids) > 0 THEN
    -- Rate windows: a claim after the window ran out opens a new one (BullMQ's fixed-window limiter).
    UPDATE {{schema}}.job_controls k
       SET window_started_at = CASE WHEN k.window_started_at IS NULL
                                      OR k.window_started_at + make_interval(secs => k.rate_period_seconds) <= now()
                                    THEN now() ELSE k.window_started_at END,
           window_count = CASE WHEN k.window_started_at IS NULL
                                 OR k.window_started_at + make_interval(secs => k.rate_period_seconds) <= now()
                               THEN n.claimed ELSE k.window_count + n.claimed END
      FROM (SELECT c.type, count(*)::integer AS claimed FROM {{schema}}.jobs c
             WHERE c.id = ANY (v_ids) GROUP BY c.type) n
     WHERE k.scope = 'type' AND k.name = n.type AND k.rate_limit IS NOT NULL;
  END IF;

  IF cardinality(v_ids) = 0 THEN
    RETURN;
  END IF;
  -- Returned in no particular order: the worker sorts by claim_seq.
  RETURN QUERY
  UPDATE {{schema}}.jobs j
     SET status = 'processing',
         worker_id = p_worker_id,
         attempts = j.attempts + 1,
         -- The clock, not now(): the claim may share a transaction begun before a parent's completion
         -- committed (a worker's pipeline), and a job must not show as started before its parent completed.
         started_at = clock_timestamp(),
         lease_expires_at = now() + make_interval(secs => p_lease_seconds),
         handler_started = o.n <= coalesce(p_start, p_limit),
         claim_seq = p_seq_base + o.n
    FROM unnest(v_ids) WITH ORDINALITY AS o(id, n)
   WHERE j.id = o.id
  RETURNING j.*;
END $$;
