-- 0008: the SQL API: enqueue and follow jobs and briefs from any language, in SQL.
--
-- Producers in every language call these functions: from psql, from any driver inside the application's own
-- transaction, and as PostgREST RPC (`supabase.rpc('create_job', { type: 'analysis', payload: {...} })`).
-- Argument names are the Python API's keyword names, because PostgREST turns JSON keys into argument names:
--   create_job(type, payload, priority, run_at, delay, max_attempts, timeout, brief_id, queue,
--              unique_key, unique_for, depends_on)                          -> the job (jsonb)
--   create_jobs(jobs jsonb)          a batch, with `key` and `depends_on`  -> their ids in order (jsonb)
--   create_brief_with_job(user_id, title, description, query, media_type, use_pipeline, steps, options,
--                         priority, max_attempts, queue)                   -> {brief, job} (jsonb)
--   get_job(job_id), get_brief(brief_id), list_briefs(user_id, status, before, limit)  -> jsonb, NULL if none
-- Results are jsonb so every client reads the same document: psql, node-postgres and PostgREST alike.
--
-- They check exactly what `supaworker.validation` and `client.validate_job` check, with the same messages;
-- tests/integration/test_sql_api.py runs one list of cases through both. A rejected call raises SQLSTATE
-- 22023 (invalid_parameter_value) with the message, the field in COLUMN, and `field: <name>` in DETAIL
-- (PostgREST passes DETAIL on as `details`). Nothing is written when a call is rejected.
--
-- Executable by the service role and the migrating owner only: never by PUBLIC, anon or authenticated.
--
-- End users reading their own briefs through PostgREST is opt-in: expose_briefs(true) (the command
-- `supaworker supabase expose-briefs`) grants `authenticated` SELECT on briefs and on their steps' public
-- columns under row-level security keyed on the JWT's `sub`; expose_briefs(false) takes it back.

-- -- errors and checks ------------------------------------------------------------------------------------

-- Raises the API's rejection: SQLSTATE 22023, the message, and the field when there is one.
CREATE FUNCTION {{schema}}.raise_invalid(p_message text, p_field text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF p_field IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = p_message;
  END IF;
  RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = p_message, COLUMN = p_field,
                        DETAIL = 'field: ' || p_field;
END $$;

-- A value as Python's repr() writes it in the shared messages (strings quoted, NULL as None).
CREATE FUNCTION {{schema}}.repr(p_value text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN p_value IS NULL THEN 'None'
              WHEN position('''' IN p_value) > 0 AND position('"' IN p_value) = 0 THEN '"' || p_value || '"'
              ELSE '''' || replace(replace(p_value, '\', '\\'), '''', '\''') || '''' END
$$;

-- Python's name for the type of a JSON value, as the shared messages name it.
CREATE FUNCTION {{schema}}.json_type_name(p_value jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE jsonb_typeof(p_value)
           WHEN 'string' THEN 'str' WHEN 'boolean' THEN 'bool' WHEN 'array' THEN 'list' WHEN 'object' THEN 'dict'
           WHEN 'number' THEN CASE WHEN p_value::text ~ '^-?[0-9]+$' THEN 'int' ELSE 'float' END
           ELSE 'NoneType' END
$$;

-- True when the text is empty or only whitespace as Python's str.strip() sees it.
CREATE FUNCTION {{schema}}.is_blank(p_value text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT p_value ~ '^[\s\u001c-\u001f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$'
$$;

-- validation.check_text: a string (NULL is not), non-blank unless p_allow_blank, at most p_max_length long.
CREATE FUNCTION {{schema}}.check_text(
  p_field text, p_value text, p_max_length integer, p_allow_blank boolean DEFAULT false
) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF p_value IS NULL THEN
    PERFORM {{schema}}.raise_invalid(p_field || ' must be a string, not NoneType', p_field);
  END IF;
  IF NOT p_allow_blank AND {{schema}}.is_blank(p_value) THEN
    PERFORM {{schema}}.raise_invalid(p_field || ' must be a non-empty string', p_field);
  END IF;
  IF length(p_value) > p_max_length THEN
    PERFORM {{schema}}.raise_invalid(
      format('%s must be at most %s characters, not %s', p_field, p_max_length, length(p_value)), p_field);
  END IF;
END $$;

-- A number as Python's format(value, 'g') writes it (six significant digits), as the shared messages do.
CREATE FUNCTION {{schema}}.format_g(p_value double precision) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
           WHEN p_value IS NULL THEN 'None'
           WHEN p_value = 0 THEN '0'
           WHEN p_value = 'NaN' THEN 'nan'
           WHEN p_value = 'Infinity' THEN 'inf'
           WHEN p_value = '-Infinity' THEN '-inf'
           WHEN abs(p_value) >= 1e-4 AND abs(p_value) < 999999.5 THEN
             regexp_replace(regexp_replace(
               round(p_value::numeric, greatest(0, 5 - floor(log(abs(p_value::numeric)))::integer))::text,
               '(\.[0-9]*?)0+$', '\1'), '\.$', '')
           ELSE regexp_replace(btrim(to_char(p_value, '9.99999EEEE')), '\.?0+e', 'e') END
$$;

-- validation.check_seconds: finite, > 0 when p_positive (else >= 0), at most p_maximum.
CREATE FUNCTION {{schema}}.check_seconds(
  p_field text, p_value double precision, p_maximum double precision, p_positive boolean
) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF p_value IS NULL OR p_value IN ('NaN', 'Infinity', '-Infinity')
     OR (p_positive AND p_value <= 0) OR (NOT p_positive AND p_value < 0) THEN
    PERFORM {{schema}}.raise_invalid(
      format('%s must be a finite number of seconds %s, not %s', p_field,
             CASE WHEN p_positive THEN '> 0' ELSE '>= 0' END, coalesce(p_value::text, 'None')), p_field);
  END IF;
  IF p_value > p_maximum THEN
    PERFORM {{schema}}.raise_invalid(
      format('%s must be at most %s seconds, not %s', p_field, {{schema}}.format_g(p_maximum),
             {{schema}}.format_g(p_value)), p_field);
  END IF;
END $$;

-- validation.check_json's depth rule: containers nested at most p_max_depth deep (a scalar is depth 0).
CREATE FUNCTION {{schema}}.check_json_depth(p_field text, p_value jsonb, p_max_depth integer DEFAULT 64)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  -- Cheap first: a document shorter than 2 * (max + 1) characters cannot hold max + 1 nested containers.
  IF length(p_value::text) > 2 * (p_max_depth + 1)
     AND jsonb_path_exists(p_value, format('strict $.**{%s to last} ? (@.type() == "object" || @.type() == "array")',
                                           p_max_depth)::jsonpath) THEN
    PERFORM {{schema}}.raise_invalid(format('%s is nested more than %s levels deep', p_field, p_max_depth), p_field);
  END IF;
END $$;

-- client.validate_job: every check create_job makes before it touches a row, in the same order.
CREATE FUNCTION {{schema}}.check_job(
  type text,
  payload jsonb,
  priority bigint,
  run_at timestamptz,
  delay double precision,
  max_attempts bigint,
  timeout double precision,
  queue text,
  unique_key text,
  unique_for double precision,
  depends_on bigint[]
) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_ref bigint;
BEGIN
  PERFORM {{schema}}.check_text('type', check_job.type, 128);
  PERFORM {{schema}}.check_text('queue', check_job.queue, 128);
  IF check_job.payload IS NOT NULL THEN
    PERFORM {{schema}}.check_json_depth('payload', check_job.payload);
  END IF;
  IF check_job.priority IS NULL OR check_job.priority NOT BETWEEN -2147483648 AND 2147483647 THEN
    PERFORM {{schema}}.raise_invalid('priority must be a 32-bit integer (lower runs first)', 'priority');
  END IF;
  IF check_job.max_attempts IS NULL OR check_job.max_attempts NOT BETWEEN 1 AND 2147483647 THEN
    PERFORM {{schema}}.raise_invalid('max_attempts must be an integer >= 1', 'max_attempts');
  END IF;
  IF check_job.timeout IS NOT NULL THEN
    PERFORM {{schema}}.check_seconds('timeout', check_job.timeout, 2592000.0, true);
  END IF;
  IF check_job.run_at IS NOT NULL AND check_job.delay IS NOT NULL THEN
    PERFORM {{schema}}.raise_invalid('give run_at or delay, not both', 'delay');
  END IF;
  IF check_job.run_at IS NOT NULL
     AND NOT (check_job.run_at >= '1970-01-01T00:00:00Z' AND check_job.run_at < '9999-01-01T00:00:00Z') THEN
    PERFORM {{schema}}.raise_invalid(
      'run_at must be from 1970-01-01T00:00:00+00:00 to before 9999-01-01T00:00:00+00:00, not ' || check_job.run_at,
      'run_at');
  END IF;
  IF check_job.delay IS NOT NULL THEN
    PERFORM {{schema}}.check_seconds('delay', check_job.delay, 3153600000.0, false);
  END IF;
  IF check_job.unique_key IS NOT NULL THEN
    PERFORM {{schema}}.check_text('unique_key', check_job.unique_key, 512, true);
    IF check_job.unique_key = '' THEN
      PERFORM {{schema}}.raise_invalid('unique_key must be a non-empty string of at most 512 characters');
    END IF;
  END IF;
  IF check_job.unique_for IS NOT NULL THEN
    IF check_job.unique_key IS NULL THEN
      PERFORM {{schema}}.raise_invalid('unique_for needs a unique_key');
    END IF;
    PERFORM {{schema}}.check_seconds('unique_for', check_job.unique_for, 3153600000.0, true);
  END IF;
  -- dependencies.check_depends_on
  FOREACH v_ref IN ARRAY coalesce(check_job.depends_on, '{}') LOOP
    IF v_ref IS NULL OR v_ref < 1 THEN
      PERFORM {{schema}}.raise_invalid('depends_on entries must be job ids, not ' || coalesce(v_ref::text, 'None'));
    END IF;
  END LOOP;
  IF (SELECT count(DISTINCT r) FROM unnest(check_job.depends_on) r) > 1000 THEN
    PERFORM {{schema}}.raise_invalid(format('a job may depend on at most 1000 jobs, not %s',
                                            (SELECT count(DISTINCT r) FROM unnest(check_job.depends_on) r)));
  END IF;
END $$;

-- dependencies.check_parents: locks the existing parents (FOR SHARE, id order) and returns the status a new
-- job starts in; unknown, failed or cancelled parents are refused. p_ids are distinct, in the caller's order.
CREATE FUNCTION {{schema}}.check_parents(p_label text, p_ids bigint[]) RETURNS {{schema}}.job_status
LANGUAGE plpgsql AS $$
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
    PERFORM {{schema}}.raise_invalid(format('%s depends on unknown job id(s) %s', p_label, v_unknown));
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

-- client.check_briefs_exist: the smallest of the ids that is no brief's.
CREATE FUNCTION {{schema}}.check_briefs_exist(p_ids uuid[]) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_missing uuid;
BEGIN
  SELECT x INTO v_missing FROM unnest(p_ids) x
   WHERE x IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {{schema}}.briefs b WHERE b.id = x)
   ORDER BY x LIMIT 1;
  IF v_missing IS NOT NULL THEN
    PERFORM {{schema}}.raise_invalid(format('brief_id %s is no brief''s id; create the brief first', v_missing),
                                     'brief_id');
  END IF;
END $$;

-- -- documents ---------------------------------------------------------------------------------------------

-- A job as the API returns it: every column, and the ids it depends on.
CREATE FUNCTION {{schema}}.job_document(p_job {{schema}}.jobs) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT to_jsonb(p_job) || jsonb_build_object('depends_on', coalesce(
    (SELECT jsonb_agg(d.depends_on ORDER BY d.depends_on) FROM {{schema}}.job_dependencies d
      WHERE d.job_id = p_job.id), '[]'::jsonb))
$$;

-- A brief with its derived status (briefs_with_status) and, when p_steps, its jobs in order.
CREATE FUNCTION {{schema}}.brief_document(p_brief_id uuid, p_steps boolean DEFAULT true) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT to_jsonb(b) || CASE WHEN p_steps THEN jsonb_build_object('steps', coalesce(
           (SELECT jsonb_agg({{schema}}.job_document(j) ORDER BY j.id) FROM {{schema}}.jobs j
             WHERE j.brief_id = b.id), '[]'::jsonb))
         ELSE '{}'::jsonb END
    FROM {{schema}}.briefs_with_status b
   WHERE b.id = p_brief_id
$$;

-- -- the pipelines -------------------------------------------------------------------------------------------

-- The job types a brief runs, by media type: the SQL copy of supaworker.pipelines (a test keeps them equal).
CREATE FUNCTION {{schema}}.pipelines() RETURNS TABLE (media_type text, steps text[])
LANGUAGE sql IMMUTABLE AS $$
  VALUES ('video', ARRAY['analysis', 'asset_prep', 'video_generation', 'render']),
         ('image', ARRAY['analysis', 'asset_prep', 'image_processing', 'render']),
         ('audio', ARRAY['analysis', 'asset_prep', 'render']),
         ('text', ARRAY['analysis', 'text_analysis', 'render'])
$$;

-- pipelines.steps_for: the media type's pipeline with use_pipeline, else the single step.
CREATE FUNCTION {{schema}}.brief_steps(media_type text, use_pipeline boolean) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN use_pipeline THEN (SELECT p.steps FROM {{schema}}.pipelines() p
                                       WHERE p.media_type = brief_steps.media_type)
              ELSE ARRAY['analysis'] END
$$;

-- -- enqueueing ----------------------------------------------------------------------------------------------

-- Enqueues one job and returns it (with `duplicate` and `depends_on`), exactly as supaworker.create_job.
CREATE FUNCTION {{schema}}.create_job(
  type text,
  payload jsonb DEFAULT '{}',
  priority bigint DEFAULT 0,
  run_at timestamptz DEFAULT NULL,
  delay double precision DEFAULT NULL,
  max_attempts bigint DEFAULT 3,
  timeout double precision DEFAULT NULL,
  brief_id uuid DEFAULT NULL,
  queue text DEFAULT 'default',
  unique_key text DEFAULT NULL,
  unique_for double precision DEFAULT NULL,
  depends_on bigint[] DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_parents bigint[];
  v_status {{schema}}.job_status := 'pending';
  v_run_at timestamptz;
  v_row {{schema}}.jobs;
  v_unique record;
BEGIN
  PERFORM {{schema}}.check_job(create_job.type, create_job.payload, create_job.priority, create_job.run_at,
                               create_job.delay, create_job.max_attempts, create_job.timeout, create_job.queue,
                               create_job.unique_key, create_job.unique_for, create_job.depends_on);
  -- The common call (no brief, no parents) skips the statements it does not need: each costs a plan run.
  IF create_job.brief_id IS NOT NULL THEN
    PERFORM {{schema}}.check_briefs_exist(ARRAY[create_job.brief_id]);
  END IF;
  IF cardinality(create_job.depends_on) > 0 THEN
    -- Distinct, in the order given.
    SELECT array_agg(r ORDER BY o) INTO v_parents
      FROM (SELECT r, min(o) AS o FROM unnest(create_job.depends_on) WITH ORDINALITY AS x(r, o) GROUP BY r) d;
  END IF;
  v_run_at := coalesce(create_job.run_at, now() + make_interval(secs => coalesce(create_job.delay, 0)));
  IF create_job.unique_key IS NOT NULL THEN
    IF v_parents IS NOT NULL THEN
      PERFORM {{schema}}.raise_invalid('unique_key cannot be combined with depends_on (yet): give one or the other');
    END IF;
    SELECT u.duplicate, u.job INTO v_unique
      FROM {{schema}}.insert_unique_job(create_job.type, create_job.queue, create_job.priority::integer,
                                        coalesce(create_job.payload, '{}'), create_job.max_attempts::integer,
                                        v_run_at, create_job.timeout, create_job.brief_id, create_job.unique_key,
                                        create_job.unique_for) u;
    RETURN {{schema}}.job_document(v_unique.job) || jsonb_build_object('duplicate', v_unique.duplicate);
  END IF;
  IF v_parents IS NOT NULL THEN
    v_status := {{schema}}.check_parents('the job', v_parents);
  END IF;
  INSERT INTO {{schema}}.jobs AS j (type, queue, status, priority, payload, max_attempts, run_at, timeout_seconds,
                                    brief_id)
  VALUES (create_job.type, create_job.queue, v_status, create_job.priority, coalesce(create_job.payload, '{}'),
          create_job.max_attempts, v_run_at, create_job.timeout, create_job.brief_id)
  RETURNING j.* INTO v_row;
  IF v_parents IS NULL THEN
    RETURN to_jsonb(v_row) || '{"depends_on": [], "duplicate": false}'::jsonb;
  END IF;
  -- The trigger job_dependencies_check re-checks under its locks and settles waiting or pending.
  INSERT INTO {{schema}}.job_dependencies (job_id, depends_on) SELECT v_row.id, p FROM unnest(v_parents) p;
  SELECT * INTO v_row FROM {{schema}}.jobs j WHERE j.id = v_row.id;
  RETURN {{schema}}.job_document(v_row) || jsonb_build_object('duplicate', false);
END $$;

-- One field of a create_jobs item as the type create_job takes, or the shared message naming it.
CREATE FUNCTION {{schema}}.job_field_integer(p_item jsonb, p_field text, p_default bigint, p_message text)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF NOT p_item ? p_field THEN
    RETURN p_default;
  END IF;
  IF jsonb_typeof(p_item -> p_field) = 'number' AND (p_item ->> p_field) ~ '^-?[0-9]{1,19}$'
     AND (p_item ->> p_field)::numeric BETWEEN -9223372036854775808 AND 9223372036854775807 THEN
    RETURN (p_item ->> p_field)::bigint;
  END IF;
  PERFORM {{schema}}.raise_invalid(p_message, p_field);
END $$;

CREATE FUNCTION {{schema}}.job_field_text(p_item jsonb, p_field text, p_default text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF NOT p_item ? p_field THEN
    RETURN p_default;
  END IF;
  IF jsonb_typeof(p_item -> p_field) = 'null' THEN
    RETURN NULL;
  END IF;
  IF jsonb_typeof(p_item -> p_field) <> 'string' THEN
    PERFORM {{schema}}.raise_invalid(
      format('%s must be a string, not %s', p_field, {{schema}}.json_type_name(p_item -> p_field)), p_field);
  END IF;
  RETURN p_item ->> p_field;
END $$;

CREATE FUNCTION {{schema}}.job_field_seconds(p_item jsonb, p_field text, p_positive boolean)
RETURNS double precision
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF jsonb_typeof(p_item -> p_field) IS NULL OR jsonb_typeof(p_item -> p_field) = 'null' THEN
    RETURN NULL;
  END IF;
  IF jsonb_typeof(p_item -> p_field) = 'number' THEN
    RETURN (p_item ->> p_field)::double precision;
  END IF;
  PERFORM {{schema}}.raise_invalid(
    format('%s must be a finite number of seconds %s, not %s', p_field, CASE WHEN p_positive THEN '> 0' ELSE '>= 0' END,
           p_item -> p_field), p_field);
END $$;

-- Enqueues many jobs at once and returns their ids in order, exactly as supaworker.create_jobs: each item
-- is an object with create_job's fields (`type` required), an optional `key` unique in the batch, and a
-- `depends_on` naming existing jobs by id and jobs of the batch by key. Parents get smaller ids than their
-- children; a cycle is refused. Everything is checked before anything is written.
CREATE FUNCTION {{schema}}.create_jobs(jobs jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_n integer;
  v_item jsonb;
  v_i integer;
  v_name text;
  v_msg text;
  v_field text;
  v_ref jsonb;
  v_key text;
  v_keys text[] := '{}';
  v_type text[] := '{}';
  v_queue text[] := '{}';
  v_payload jsonb[] := '{}';
  v_priority bigint[] := '{}';
  v_max_attempts bigint[] := '{}';
  v_run_at timestamptz[] := '{}';
  v_timeout double precision[] := '{}';
  v_brief uuid[] := '{}';
  v_status {{schema}}.job_status[] := '{}';
  v_refs jsonb[] := '{}';       -- each item's depends_on: distinct, in the order given
  v_ids bigint[];
  v_placed boolean[];
  v_progress boolean;
  v_left integer;
  v_path integer[];
  v_at integer;
  v_next integer;
  v_parents bigint[];
  v_this_run_at timestamptz;
  v_delay double precision;
  v_depends bigint[];
  v_unique_key text;
  v_unique_for double precision;
  v_brief_text text;
  v_brief_id uuid;
  v_child bigint[] := '{}';
  v_parent bigint[] := '{}';
  v_j integer;
BEGIN
  IF jsonb_typeof(create_jobs.jobs) IS DISTINCT FROM 'array' THEN
    PERFORM {{schema}}.raise_invalid('jobs must be a list of jobs', 'jobs');
  END IF;
  v_n := jsonb_array_length(create_jobs.jobs);
  FOR v_i IN 0 .. v_n - 1 LOOP
    v_item := create_jobs.jobs -> v_i;
    IF jsonb_typeof(v_item) <> 'object' OR NOT v_item ? 'type' THEN
      PERFORM {{schema}}.raise_invalid(format('job #%s: each job must be a mapping with a ''type''', v_i));
    END IF;
    SELECT k INTO v_name FROM jsonb_object_keys(v_item) k
     WHERE k NOT IN ('type', 'payload', 'priority', 'run_at', 'delay', 'max_attempts', 'timeout', 'brief_id',
                     'queue', 'unique_key', 'unique_for', 'depends_on', 'key')
     ORDER BY k COLLATE "C" LIMIT 1;
    IF v_name IS NOT NULL THEN
      PERFORM {{schema}}.raise_invalid(format('job #%s: unknown field %s', v_i, {{schema}}.repr(v_name)));
    END IF;
    BEGIN
      -- client._bulk_row: the key, then depends_on (ids and keys), then create_job's checks.
      v_key := NULL;
      IF v_item ? 'key' AND jsonb_typeof(v_item -> 'key') <> 'null' THEN
        IF jsonb_typeof(v_item -> 'key') <> 'string' OR {{schema}}.is_blank(v_item ->> 'key')
           OR length(v_item ->> 'key') > 128 THEN
          PERFORM {{schema}}.raise_invalid('key must be a non-empty string of at most 128 characters');
        END IF;
        v_key := v_item ->> 'key';
      END IF;
      v_depends := '{}';
      IF jsonb_typeof(v_item -> 'depends_on') IS DISTINCT FROM 'null' AND v_item ? 'depends_on' THEN
        IF jsonb_typeof(v_item -> 'depends_on') <> 'array' THEN
          PERFORM {{schema}}.raise_invalid('depends_on must be a list of job ids');
        END IF;
        FOR v_ref IN SELECT x.e FROM jsonb_array_elements(v_item -> 'depends_on') AS x(e) LOOP
          IF jsonb_typeof(v_ref) = 'number' AND v_ref::text ~ '^-?[0-9]+$' THEN
            IF v_ref::text::numeric < 1 OR v_ref::text::numeric >= 9223372036854775808 THEN
              PERFORM {{schema}}.raise_invalid('depends_on entries must be job ids, not ' || v_ref::text);
            END IF;
          ELSIF jsonb_typeof(v_ref) = 'string' THEN
            IF {{schema}}.is_blank(v_ref #>> '{}') OR length(v_ref #>> '{}') > 128 THEN
              PERFORM {{schema}}.raise_invalid('depends_on keys must be non-empty strings of at most 128 characters');
            END IF;
          ELSE
            PERFORM {{schema}}.raise_invalid('depends_on entries must be job ids, not '
              || CASE jsonb_typeof(v_ref) WHEN 'null' THEN 'None' WHEN 'boolean' THEN initcap(v_ref::text)
                                          ELSE v_ref::text END);
          END IF;
        END LOOP;
      END IF;
      SELECT coalesce(jsonb_agg(e ORDER BY o), '[]') INTO v_ref
        FROM (SELECT e, min(o) AS o FROM jsonb_array_elements(
                CASE WHEN jsonb_typeof(v_item -> 'depends_on') = 'array' THEN v_item -> 'depends_on' END)
                WITH ORDINALITY AS x(e, o) GROUP BY e) d;
      IF jsonb_array_length(v_ref) > 1000 THEN
        PERFORM {{schema}}.raise_invalid(format('a job may depend on at most 1000 jobs, not %s', jsonb_array_length(v_ref)));
      END IF;
      v_type := v_type || {{schema}}.job_field_text(v_item, 'type', NULL);
      v_queue := v_queue || {{schema}}.job_field_text(v_item, 'queue', 'default');
      PERFORM {{schema}}.check_text('type', v_type[v_i + 1], 128);
      PERFORM {{schema}}.check_text('queue', v_queue[v_i + 1], 128);
      v_payload := v_payload || coalesce(nullif(v_item -> 'payload', 'null'), '{}');
      v_priority := v_priority || {{schema}}.job_field_integer(
        v_item, 'priority', 0, 'priority must be a 32-bit integer (lower runs first)');
      v_max_attempts := v_max_attempts || {{schema}}.job_field_integer(
        v_item, 'max_attempts', 3, 'max_attempts must be an integer >= 1');
      v_this_run_at := NULL;
      IF jsonb_typeof(v_item -> 'run_at') IS DISTINCT FROM 'null' AND v_item ? 'run_at' THEN
        -- ISO 8601 with a time zone, as validation.check_run_at wants a timezone-aware time.
        IF jsonb_typeof(v_item -> 'run_at') <> 'string'
           OR (v_item ->> 'run_at') !~ '(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$' THEN
          PERFORM {{schema}}.raise_invalid('run_at must be a timezone-aware datetime', 'run_at');
        END IF;
        BEGIN
          v_this_run_at := (v_item ->> 'run_at')::timestamptz;
        EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
          PERFORM {{schema}}.raise_invalid('run_at must be a timezone-aware datetime', 'run_at');
        END;
      END IF;
      v_delay := {{schema}}.job_field_seconds(v_item, 'delay', false);
      v_timeout := v_timeout || {{schema}}.job_field_seconds(v_item, 'timeout', true);
      v_unique_key := {{schema}}.job_field_text(v_item, 'unique_key', NULL);
      v_unique_for := {{schema}}.job_field_seconds(v_item, 'unique_for', true);
      PERFORM {{schema}}.check_job(v_type[v_i + 1], v_payload[v_i + 1], v_priority[v_i + 1], v_this_run_at, v_delay,
                                   v_max_attempts[v_i + 1], v_timeout[v_i + 1], v_queue[v_i + 1], v_unique_key,
                                   v_unique_for, NULL);
      v_brief_id := NULL;
      v_brief_text := {{schema}}.job_field_text(v_item, 'brief_id', NULL);
      IF v_brief_text IS NOT NULL THEN
        BEGIN
          v_brief_id := v_brief_text::uuid;
        EXCEPTION WHEN invalid_text_representation THEN
          PERFORM {{schema}}.raise_invalid(format('brief_id must be a UUID, not %s', {{schema}}.repr(v_brief_text)),
                                           'brief_id');
        END;
      END IF;
    EXCEPTION WHEN invalid_parameter_value THEN
      GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT;
      PERFORM {{schema}}.raise_invalid(format('job #%s: %s', v_i, v_msg));
    END;
    IF coalesce(v_delay, 0) <> 0 THEN
      PERFORM {{schema}}.raise_invalid(format('job #%s: bulk jobs take run_at, not delay', v_i));
    END IF;
    IF v_unique_key IS NOT NULL THEN
      PERFORM {{schema}}.raise_invalid(
        format('job #%s: bulk jobs take no unique_key; use create_job for unique jobs', v_i));
    END IF;
    IF v_key IS NOT NULL AND v_key = ANY (v_keys) THEN
      PERFORM {{schema}}.raise_invalid(format('job #%s: key %s is used by more than one job', v_i, {{schema}}.repr(v_key)));
    END IF;
    v_keys := v_keys || v_key;
    v_run_at := v_run_at || v_this_run_at;
    v_brief := v_brief || v_brief_id;
    v_refs := v_refs || v_ref;
  END LOOP;

  PERFORM {{schema}}.check_briefs_exist(v_brief);

  -- Batch references by key must name a job of the batch.
  FOR v_i IN 1 .. v_n LOOP
    FOR v_ref IN SELECT e FROM jsonb_array_elements(v_refs[v_i]) AS x(e) WHERE jsonb_typeof(e) = 'string' LOOP
      IF NOT (v_ref #>> '{}') = ANY (array_remove(v_keys, NULL)) THEN
        PERFORM {{schema}}.raise_invalid(format('job #%s depends on %s, which is no job''s key in this batch',
                                                v_i - 1, {{schema}}.repr(v_ref #>> '{}')));
      END IF;
    END LOOP;
  END LOOP;

  -- Insertion order: each job after the batch jobs it depends on (a job with none left is placed first).
  v_ids := array_fill(NULL::bigint, ARRAY[v_n]);
  v_placed := array_fill(false, ARRAY[v_n]);
  v_left := v_n;
  WHILE v_left > 0 LOOP
    v_progress := false;
    FOR v_i IN 1 .. v_n LOOP
      CONTINUE WHEN v_placed[v_i];
      IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(v_refs[v_i]) WITH ORDINALITY AS r(k, o)
                      WHERE jsonb_typeof(v_refs[v_i] -> (o::integer - 1)) = 'string'
                        AND NOT v_placed[array_position(v_keys, k)]) THEN
        v_placed[v_i] := true;
        v_left := v_left - 1;
        v_progress := true;
        -- A placeholder order number; the ids are drawn below in this order.
        v_ids[v_i] := v_n - v_left;
      END IF;
    END LOOP;
    IF NOT v_progress THEN
      -- Every unplaced job waits on another unplaced one: follow first parents to a repeat.
      v_at := array_position(v_placed, false);
      v_path := ARRAY[v_at];
      LOOP
        SELECT array_position(v_keys, r.k) INTO v_next
          FROM jsonb_array_elements_text(v_refs[v_at]) WITH ORDINALITY AS r(k, o)
         WHERE jsonb_typeof(v_refs[v_at] -> (o::integer - 1)) = 'string'
           AND NOT v_placed[array_position(v_keys, r.k)]
         ORDER BY o LIMIT 1;
        IF v_next = ANY (v_path) THEN
          v_path := v_path[array_position(v_path, v_next):] || v_next;
          EXIT;
        END IF;
        v_path := v_path || v_next;
        v_at := v_next;
      END LOOP;
      SELECT string_agg(CASE WHEN v_keys[p] IS NOT NULL THEN {{schema}}.repr(v_keys[p]) ELSE '#' || (p - 1) END,
                        ' -> ' ORDER BY o)
        INTO v_msg FROM unnest(v_path) WITH ORDINALITY AS x(p, o);
      PERFORM {{schema}}.raise_invalid('dependency cycle: ' || v_msg);
    END IF;
  END LOOP;

  -- Existing parents: locked, and each job's starting status from them.
  FOR v_i IN 1 .. v_n LOOP
    SELECT array_agg(e::bigint ORDER BY o) INTO v_parents
      FROM jsonb_array_elements_text(v_refs[v_i]) WITH ORDINALITY AS r(e, o)
     WHERE jsonb_typeof(v_refs[v_i] -> (o::integer - 1)) = 'number';
    v_status := v_status || CASE
      WHEN v_parents IS NOT NULL THEN {{schema}}.check_parents(format('job #%s', v_i - 1), v_parents)
      ELSE 'pending'::{{schema}}.job_status END;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(v_refs[v_i]) AS x(e) WHERE jsonb_typeof(e) = 'string') THEN
      v_status[v_i] := 'waiting';
    END IF;
  END LOOP;

  -- v_ids holds each job's place in the order; the rows go in in that order, so ids follow it.
  WITH ordered AS (
    SELECT x.i, x.place FROM unnest(v_ids) WITH ORDINALITY AS x(place, i)
  ), inserted AS (
    INSERT INTO {{schema}}.jobs AS j (id, type, queue, status, priority, payload, max_attempts, run_at,
                                      timeout_seconds, brief_id)
    SELECT nextval(pg_get_serial_sequence('{{schema}}.jobs', 'id')), v_type[o.i], v_queue[o.i], v_status[o.i],
           v_priority[o.i], v_payload[o.i], v_max_attempts[o.i], coalesce(v_run_at[o.i], now()), v_timeout[o.i],
           v_brief[o.i]
      FROM (SELECT * FROM ordered ORDER BY place) o
    RETURNING j.id
  )
  SELECT array_agg(id ORDER BY id) INTO v_parents FROM inserted;
  -- Ids were drawn in place order, so the k-th smallest id belongs to the job placed k-th.
  v_ids := ARRAY(SELECT v_parents[x.place::integer] FROM unnest(v_ids) WITH ORDINALITY AS x(place, i) ORDER BY x.i);

  FOR v_i IN 1 .. v_n LOOP
    FOR v_ref IN SELECT x.e FROM jsonb_array_elements(v_refs[v_i]) AS x(e) LOOP
      v_child := v_child || v_ids[v_i];
      v_parent := v_parent || CASE WHEN jsonb_typeof(v_ref) = 'string'
                                   THEN v_ids[array_position(v_keys, v_ref #>> '{}')]
                                   ELSE (v_ref::text)::bigint END;
    END LOOP;
  END LOOP;
  IF cardinality(v_child) > 0 THEN
    INSERT INTO {{schema}}.job_dependencies (job_id, depends_on) SELECT * FROM unnest(v_child, v_parent);
  END IF;
  RETURN to_jsonb(coalesce(v_ids, '{}'));
END $$;

-- Creates a brief and all its step jobs in one call, atomically, exactly as supaworker.create_brief_with_job:
-- without use_pipeline one `analysis` job; with it the media type's pipeline, each step depending on the one
-- before; `steps` runs an application's own sequence; `options` are extra payload fields every step gets.
-- Returns {"brief": the brief with its steps, "job": its first step}.
CREATE FUNCTION {{schema}}.create_brief_with_job(
  user_id text DEFAULT NULL,
  title text DEFAULT '',
  description text DEFAULT '',
  query text DEFAULT NULL,
  media_type text DEFAULT NULL,
  use_pipeline boolean DEFAULT false,
  steps text[] DEFAULT NULL,
  options jsonb DEFAULT NULL,
  priority bigint DEFAULT 0,
  max_attempts bigint DEFAULT 3,
  queue text DEFAULT 'default'
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_plan text[];
  v_step text;
  v_msg text;
  v_brief_id uuid;
  v_payload jsonb;
  v_ids bigint[];
  v_media_types text[] := ARRAY(SELECT p.media_type FROM {{schema}}.pipelines() p);
BEGIN
  -- briefs.validate_brief
  PERFORM {{schema}}.check_text('user_id', create_brief_with_job.user_id, 255);
  PERFORM {{schema}}.check_text('title', create_brief_with_job.title, 500, true);
  PERFORM {{schema}}.check_text('description', create_brief_with_job.description, 20000, true);
  PERFORM {{schema}}.check_text('query', create_brief_with_job.query, 20000);
  IF create_brief_with_job.media_type IS NULL OR NOT create_brief_with_job.media_type = ANY (v_media_types) THEN
    PERFORM {{schema}}.raise_invalid(format('media_type must be one of %s, not %s', array_to_string(v_media_types, ', '),
                                            {{schema}}.repr(create_brief_with_job.media_type)));
  END IF;
  IF create_brief_with_job.use_pipeline IS NULL THEN
    PERFORM {{schema}}.raise_invalid('use_pipeline must be true or false, not None');
  END IF;
  IF create_brief_with_job.steps IS NULL THEN
    v_plan := {{schema}}.brief_steps(create_brief_with_job.media_type, create_brief_with_job.use_pipeline);
  ELSE
    -- pipelines.check_steps
    IF coalesce(cardinality(create_brief_with_job.steps), 0) NOT BETWEEN 1 AND 50 THEN
      PERFORM {{schema}}.raise_invalid('steps must hold between 1 and 50 job types');
    END IF;
    FOREACH v_step IN ARRAY create_brief_with_job.steps LOOP
      IF v_step IS NULL OR {{schema}}.is_blank(v_step) OR length(v_step) > 128 THEN
        PERFORM {{schema}}.raise_invalid(
          'each step must be a non-empty job type of at most 128 characters, not ' || {{schema}}.repr(v_step));
      END IF;
    END LOOP;
    v_plan := create_brief_with_job.steps;
  END IF;
  IF create_brief_with_job.options IS NOT NULL THEN
    IF jsonb_typeof(create_brief_with_job.options) <> 'object' THEN
      PERFORM {{schema}}.raise_invalid('options must be a mapping of extra payload fields');
    END IF;
    PERFORM {{schema}}.check_json_depth('options', create_brief_with_job.options);
  END IF;
  BEGIN
    PERFORM {{schema}}.check_job(v_plan[1], '{}', create_brief_with_job.priority, NULL, NULL,
                                 create_brief_with_job.max_attempts, NULL, create_brief_with_job.queue, NULL, NULL, NULL);
  EXCEPTION WHEN invalid_parameter_value THEN
    GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT;
    PERFORM {{schema}}.raise_invalid(v_msg);
  END;

  INSERT INTO {{schema}}.briefs AS b (user_id, title, description, query, media_type, use_pipeline, pipeline)
  VALUES (create_brief_with_job.user_id, create_brief_with_job.title, create_brief_with_job.description,
          create_brief_with_job.query, create_brief_with_job.media_type,
          create_brief_with_job.use_pipeline OR create_brief_with_job.steps IS NOT NULL, v_plan)
  RETURNING b.id INTO v_brief_id;
  -- briefs.step_payload: the application's options, then the brief's own fields.
  v_payload := coalesce(create_brief_with_job.options, '{}') || jsonb_build_object(
    'brief_id', v_brief_id, 'title', create_brief_with_job.title, 'description', create_brief_with_job.description,
    'query', create_brief_with_job.query, 'media_type', create_brief_with_job.media_type);
  WITH inserted AS (
    INSERT INTO {{schema}}.jobs AS j (type, queue, status, priority, payload, max_attempts, brief_id)
    SELECT s.step, create_brief_with_job.queue,
           CASE WHEN s.n = 1 THEN 'pending' ELSE 'waiting' END::{{schema}}.job_status,
           create_brief_with_job.priority, v_payload, create_brief_with_job.max_attempts, v_brief_id
      FROM unnest(v_plan) WITH ORDINALITY AS s(step, n)
     ORDER BY s.n
    RETURNING j.id
  )
  SELECT array_agg(id ORDER BY id) INTO v_ids FROM inserted;
  IF cardinality(v_ids) > 1 THEN
    INSERT INTO {{schema}}.job_dependencies (job_id, depends_on)
    SELECT v_ids[n], v_ids[n - 1] FROM generate_series(2, cardinality(v_ids)) n;
  END IF;
  RETURN jsonb_build_object('brief', {{schema}}.brief_document(v_brief_id),
                            'job', (SELECT {{schema}}.job_document(j) FROM {{schema}}.jobs j WHERE j.id = v_ids[1]));
END $$;

-- -- reading --------------------------------------------------------------------------------------------------

-- One job with its dependencies, or NULL when there is none with that id.
CREATE FUNCTION {{schema}}.get_job(job_id bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT {{schema}}.job_document(j) FROM {{schema}}.jobs j WHERE j.id = get_job.job_id
$$;

-- One brief with its derived status and its steps, or NULL when there is none with that id.
CREATE FUNCTION {{schema}}.get_brief(brief_id uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT {{schema}}.brief_document(get_brief.brief_id)
$$;

-- Briefs newest first (without their steps), as supaworker.list_briefs; page with before = the last created_at.
CREATE FUNCTION {{schema}}.list_briefs(
  user_id text DEFAULT NULL, status text DEFAULT NULL, before timestamptz DEFAULT NULL, "limit" integer DEFAULT 50
) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF list_briefs.status IS NOT NULL
     AND list_briefs.status NOT IN ('failed', 'cancelled', 'completed', 'processing', 'pending') THEN
    PERFORM {{schema}}.raise_invalid(format('status must be one of failed, cancelled, completed, processing, pending, '
                                            'not %s', {{schema}}.repr(list_briefs.status)));
  END IF;
  IF list_briefs."limit" IS NULL OR list_briefs."limit" NOT BETWEEN 1 AND 10000 THEN
    PERFORM {{schema}}.raise_invalid('limit must be an integer between 1 and 10000');
  END IF;
  IF list_briefs.user_id IS NOT NULL THEN
    PERFORM {{schema}}.check_text('user_id', list_briefs.user_id, 255);
  END IF;
  RETURN coalesce((
    SELECT jsonb_agg(to_jsonb(b) ORDER BY b.created_at DESC, b.id)
      FROM (SELECT * FROM {{schema}}.briefs_with_status w
             WHERE (list_briefs.user_id IS NULL OR w.user_id = list_briefs.user_id)
               AND (list_briefs.status IS NULL OR w.status = list_briefs.status)
               AND (list_briefs.before IS NULL OR w.created_at < list_briefs.before)
             ORDER BY w.created_at DESC, w.id
             LIMIT list_briefs."limit") b), '[]'::jsonb);
END $$;

-- -- end users reading their own briefs (opt-in) ---------------------------------------------------------------

-- The JWT subject of the current PostgREST request ('' outside one): whose briefs an end user may read.
CREATE FUNCTION {{schema}}.request_user_id() RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub',
                  nullif(current_setting('request.jwt.claim.sub', true), ''), '')
$$;

-- What an end user may read of their briefs' steps: no payload (an application's options may be private),
-- no worker bookkeeping.
CREATE FUNCTION {{schema}}.brief_step_columns() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
  SELECT ARRAY['id', 'brief_id', 'type', 'status', 'progress', 'progress_message', 'progress_at', 'result',
               'last_error', 'attempts', 'max_attempts', 'created_at', 'started_at', 'completed_at']
$$;

-- Turns end-user reads on (true) or off (false), idempotently. On: `authenticated` may SELECT the briefs whose
-- user_id is its JWT's `sub` and those briefs' steps (brief_step_columns() of jobs), under row-level security,
-- and the views user_brief_steps (the same, security_invoker) and user_briefs (each own brief with its derived
-- status). Nobody but the service role (and the owner) writes; anon gets nothing. Needs PostgreSQL 15.
CREATE FUNCTION {{schema}}.expose_briefs(p_enabled boolean DEFAULT true) RETURNS boolean
LANGUAGE plpgsql
SET client_min_messages = warning  -- no notice for each DROP ... IF EXISTS of nothing
AS $$
DECLARE
  v_schema text := (parse_ident('{{schema}}'))[1];
BEGIN
  IF p_enabled AND current_setting('server_version_num')::integer < 150000 THEN
    RAISE EXCEPTION 'exposing briefs to end users needs PostgreSQL 15 or later (security_invoker views)'
      USING ERRCODE = 'feature_not_supported';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
    IF p_enabled THEN
      RAISE EXCEPTION 'no role "authenticated": end-user reads are for Supabase (or PostgREST with its roles)'
        USING ERRCODE = 'undefined_object';
    END IF;
    RETURN false;
  END IF;
  EXECUTE format('DROP POLICY IF EXISTS briefs_owner_select ON %I.briefs', v_schema);
  EXECUTE format('DROP POLICY IF EXISTS jobs_brief_owner_select ON %I.jobs', v_schema);
  EXECUTE format('DROP VIEW IF EXISTS %I.user_brief_steps', v_schema);
  EXECUTE format('DROP VIEW IF EXISTS %I.user_briefs', v_schema);
  EXECUTE format('REVOKE ALL ON %I.briefs FROM authenticated', v_schema);
  EXECUTE format('REVOKE ALL ON %I.jobs FROM authenticated', v_schema);
  IF NOT p_enabled THEN
    -- USAGE on the schema is left to secure_schema(), which takes it back from authenticated.
    EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM authenticated', v_schema);
    RETURN false;
  END IF;
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO authenticated', v_schema);
  EXECUTE format('GRANT SELECT ON %I.briefs TO authenticated', v_schema);
  EXECUTE format('GRANT SELECT (%s) ON %I.jobs TO authenticated',
                 (SELECT string_agg(quote_ident(c), ', ') FROM unnest({{schema}}.brief_step_columns()) c), v_schema);
  EXECUTE format('CREATE POLICY briefs_owner_select ON %I.briefs FOR SELECT TO authenticated '
                 'USING (user_id = %I.request_user_id())', v_schema, v_schema);
  -- The subquery on briefs runs under the reader's own policy on briefs: only their briefs' jobs.
  EXECUTE format('CREATE POLICY jobs_brief_owner_select ON %I.jobs FOR SELECT TO authenticated '
                 'USING (brief_id IN (SELECT b.id FROM %I.briefs b))', v_schema, v_schema);
  -- The derived status reads all of a brief's jobs (payloads included), so this view runs as its owner, as
  -- briefs_with_status does, and applies the policies' rule itself: only the reader's own briefs.
  EXECUTE format('CREATE VIEW %I.user_briefs AS SELECT w.* FROM %I.briefs_with_status w '
                 'WHERE w.user_id = %I.request_user_id()', v_schema, v_schema, v_schema);
  EXECUTE format('CREATE VIEW %I.user_brief_steps WITH (security_invoker = true) AS SELECT %s FROM %I.jobs '
                 'WHERE brief_id IS NOT NULL',
                 v_schema, (SELECT string_agg(quote_ident(c), ', ') FROM unnest({{schema}}.brief_step_columns()) c),
                 v_schema);
  EXECUTE format('GRANT SELECT ON %I.user_briefs, %I.user_brief_steps TO authenticated', v_schema, v_schema);
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
    EXECUTE format('GRANT SELECT ON %I.user_briefs, %I.user_brief_steps TO service_role', v_schema, v_schema);
  END IF;
  EXECUTE format('GRANT EXECUTE ON FUNCTION %I.request_user_id() TO authenticated', v_schema);
  RETURN true;
END $$;

-- -- privileges -----------------------------------------------------------------------------------------------

-- Nothing here is for PUBLIC (0004 already revokes EXECUTE on new functions by default; this says so for
-- these). The service role runs the API; expose_briefs() changes grants, so it is the owner's only.
DO $$
DECLARE
  v_function regprocedure;
  v_schema text := (parse_ident('{{schema}}'))[1];
BEGIN
  FOR v_function IN
    SELECT p.oid::regprocedure FROM pg_proc p
     WHERE p.pronamespace = v_schema::regnamespace
       AND p.proname IN ('raise_invalid', 'repr', 'format_g', 'json_type_name', 'is_blank', 'check_text', 'check_seconds',
                         'check_json_depth', 'check_job', 'check_parents', 'check_briefs_exist', 'job_document',
                         'brief_document', 'pipelines', 'brief_steps', 'create_job', 'job_field_integer',
                         'job_field_text', 'job_field_seconds', 'create_jobs', 'create_brief_with_job', 'get_job',
                         'get_brief', 'list_briefs', 'request_user_id', 'brief_step_columns', 'expose_briefs')
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', v_function);
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role')
       AND v_function::text NOT LIKE '%expose_briefs(%' THEN
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO service_role', v_function);
    END IF;
  END LOOP;
END $$;
