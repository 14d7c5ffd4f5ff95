-- 0023: claims go on past two rows plain SQL can store that failed every claim, and so every worker.
--
-- claim_jobs_v2() is redefined from its body in 0020 (same signature, result and SET options); it differs in
-- two places:
-- - a pending job whose attempts equal its max_attempts (jobs_attempts_within_max allows it; nothing but
--   plain SQL writes it) gets max_attempts raised to the attempt it is claimed for, as retry_job() does,
--   instead of a check violation that failed the whole claim;
-- - a rate window of job_controls whose rate_period_seconds is 'NaN' or 'Infinity' (the > 0 check lets
--   both through) is taken as a hundred years instead of an "interval out of range" error.

CREATE OR REPLACE FUNCTION {{schema}}.claim_jobs_v2(p_worker_id text, p_types text[] DEFAULT NULL::text[], p_limit integer DEFAULT 1, p_lease_seconds double precision DEFAULT 30, p_queues text[] DEFAULT NULL::text[], p_start integer DEFAULT NULL::integer, p_seq_base bigint DEFAULT 0)
 RETURNS SETOF {{schema}}.jobs
 LANGUAGE plpgsql
 SET enable_sort TO 'off'
 SET enable_seqscan TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
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
  v_shared boolean;
  v_turn_name text;
  v_turn text[];
  v_turn_key text;
  v_turn_left bigint;
  v_quantum bigint;  -- a turn is weight x quantum: 10,000 x a tenth of the largest batch is past an integer
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
  v_shared := v_first IS DISTINCT FROM v_last;

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
                    OR k.window_started_at + make_interval(secs => least(k.rate_period_seconds, 3153600000)) <= now()
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
     AND NOT (NOT v_shared AND NOT v_controls AND cardinality(p_types) = 1 AND p_queues IS NULL) THEN
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

  IF NOT v_shared AND NOT v_controls AND p_types IS NULL AND p_queues IS NULL THEN
    v_ids := ARRAY(
      SELECT c.id FROM {{schema}}.jobs c
       WHERE c.status = 'pending'
         AND c.run_at <= now()
         AND (p_types IS NULL OR c.type = ANY (p_types))
         AND (p_queues IS NULL OR c.queue = ANY (p_queues))
       ORDER BY c.priority, c.run_at, c.id
       LIMIT p_limit
         FOR UPDATE SKIP LOCKED);
  ELSIF NOT v_shared AND NOT v_controls AND cardinality(p_types) = 1 AND p_queues IS NULL THEN
    -- One type: its jobs in claim order are a range of jobs_type_claim_idx.
    v_ids := ARRAY(
      SELECT c.id FROM {{schema}}.jobs c
       WHERE c.status = 'pending'
         AND c.type >= p_types[1] AND c.type <= p_types[1]
         AND c.run_at <= now()
       ORDER BY c.type, c.priority, c.run_at, c.id
       LIMIT p_limit
         FOR UPDATE SKIP LOCKED);
  ELSIF NOT v_shared AND NOT v_controls THEN
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
  ELSIF NOT v_shared AND p_types IS NOT NULL THEN
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
  ELSIF NOT v_shared THEN
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
    -- The shares: turns round the tenants with jobs queued, in key order, from where this session's last
    -- shared claim left off (kept in a setting of the session, by schema). A turn is the tenant's weight times a
    -- tenth of the batch, so a claim reads about ten keys and takes from about ten tenants however many wait;
    -- the turn the batch ends in goes on in the next claim. Sessions go round each on their own: a new one starts
    -- at a tenant drawn at random in proportion to weight, so that sessions claiming once each (a pooler's, a
    -- short-lived one's) do not all start at the first; one whose tenant has gone goes on at the next.
    v_turn_name := 'supaworker.fair_turn_' || to_regnamespace((parse_ident('{{schema}}'))[1])::oid;
    v_turn := nullif(current_setting(v_turn_name, true), '')::text[];  -- {what is left of the turn, tenant}
    v_quantum := ceil(p_limit / 10.0)::bigint;
    IF v_turn IS NOT NULL THEN
      SELECT c.fairness_key INTO v_turn_key FROM {{schema}}.jobs c
       WHERE c.status = 'pending' AND c.fairness_key >= v_turn[2] ORDER BY c.fairness_key LIMIT 1;
      IF v_turn_key = v_turn[2] AND v_turn[1]::bigint > 0 THEN
        v_turn_left := v_turn[1]::bigint;
      ELSIF v_turn_key = v_turn[2] THEN
        SELECT c.fairness_key INTO v_turn_key FROM {{schema}}.jobs c
         WHERE c.status = 'pending' AND c.fairness_key > v_turn[2] ORDER BY c.fairness_key LIMIT 1;
      END IF;
    ELSE
      -- The draw walks the keys once per session (the first 1,000 where there are more).
      WITH RECURSIVE k(key, n) AS (
        SELECT v_first, 1
        UNION ALL
        SELECT (SELECT c.fairness_key FROM {{schema}}.jobs c
                 WHERE c.status = 'pending' AND c.fairness_key > k.key ORDER BY c.fairness_key LIMIT 1), k.n + 1
          FROM k WHERE k.key IS NOT NULL AND k.n < 1000
      )
      SELECT k.key INTO v_turn_key
        FROM k LEFT JOIN {{schema}}.fairness_weights w ON w.key = k.key
       WHERE k.key IS NOT NULL
       ORDER BY -ln(1.0 - random()) / coalesce(w.weight, 1)
       LIMIT 1;
    END IF;
    v_turn_key := coalesce(v_turn_key, v_first);

    WITH RECURSIVE walk(n, key, quota, total) AS (
      SELECT 1, v_turn_key, t.quota, t.quota
        FROM (SELECT coalesce(v_turn_left, v_quantum * coalesce(
                (SELECT w.weight FROM {{schema}}.fairness_weights w WHERE w.key = v_turn_key), 1)) AS quota) t
      UNION ALL
      SELECT k.n + 1, nk.key, nk.quota, k.total + nk.quota
        FROM walk k
       CROSS JOIN LATERAL (
             SELECT nx.key, v_quantum * coalesce(
                      (SELECT w.weight FROM {{schema}}.fairness_weights w WHERE w.key = nx.key), 1) AS quota
               FROM (SELECT coalesce(
                       (SELECT c.fairness_key FROM {{schema}}.jobs c
                         WHERE c.status = 'pending' AND c.fairness_key > k.key ORDER BY c.fairness_key LIMIT 1),
                       v_first) AS key) nx) nk
       WHERE k.total < p_limit AND k.n < 1000
    ), turn AS (
      -- A tenant met twice in one claim (few tenants) takes its turns in one go.
      SELECT k.key, min(k.n) AS n, sum(least(k.quota, p_limit - (k.total - k.quota)))::bigint AS quota
        FROM walk k GROUP BY k.key
    )
    SELECT ARRAY(
             SELECT p.id FROM turn t
              CROSS JOIN LATERAL (
                    SELECT c.id, c.priority, c.run_at FROM {{schema}}.jobs c
                     WHERE c.status = 'pending'
                       -- The tenant's jobs from where the claim's may begin: a range of jobs_fair_claim_idx whose
                       -- start the index finds (with fairness_key = t.key it would walk the tenant's jobs up to it).
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
              WHERE v_any_free
              ORDER BY t.n, p.priority, p.run_at, p.id),
           (SELECT ARRAY[(k.total - p_limit)::text, k.key] FROM walk k ORDER BY k.n DESC LIMIT 1)
      INTO v_ids, v_turn;
    PERFORM set_config(v_turn_name, v_turn::text, false);
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
                                      OR k.window_started_at + make_interval(secs => least(k.rate_period_seconds, 3153600000)) <= now()
                                    THEN now() ELSE k.window_started_at END,
           window_count = CASE WHEN k.window_started_at IS NULL
                                 OR k.window_started_at + make_interval(secs => least(k.rate_period_seconds, 3153600000)) <= now()
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
         -- A pending job whose attempts plain SQL set to its max_attempts: this run is one more allowed
         -- (as retry_job() does), not a check violation that failed the claim of every worker.
         max_attempts = greatest(j.max_attempts, j.attempts + 1),
         -- The clock, not now(): the claim may share a transaction begun before a parent's completion
         -- committed (a worker's pipeline), and a job must not show as started before its parent completed.
         started_at = clock_timestamp(),
         lease_expires_at = now() + make_interval(secs => p_lease_seconds),
         handler_started = o.n <= coalesce(p_start, p_limit),
         claim_seq = p_seq_base + o.n
    FROM unnest(v_ids) WITH ORDINALITY AS o(id, n)
   WHERE j.id = o.id
  RETURNING j.*;
END $function$;
