-- 0021: the SQL API's rules are rendered from their one definition, supaworker.rules (and the pipelines from
-- supaworker.pipelines), instead of being written out here a second time.
--
-- Every limit, default and message that check_job, create_job, create_jobs, create_brief_with_job,
-- list_briefs, brief_steps and pipelines() apply is a placeholder below, rule:NAME in double braces;
-- sql.render puts in supaworker.rules.sql_values()[NAME] when the migration is applied, so psql, PostgREST
-- and Python refuse the same input with the same message. The bodies are otherwise those of 0008-0020.
-- A later change of a rule comes with a migration that redefines what uses it and records the new digest
-- (tests/migration/test_rules.py).
--
-- rules: f4269ad026c2341b

CREATE OR REPLACE FUNCTION {{schema}}.pipelines()
 RETURNS TABLE(media_type text, steps text[])
 LANGUAGE sql
 IMMUTABLE
AS $$
  {{rule:pipelines}}
$$;

CREATE OR REPLACE FUNCTION {{schema}}.brief_steps(media_type text, use_pipeline boolean)
 RETURNS text[]
 LANGUAGE sql
 IMMUTABLE
AS $$
  SELECT CASE WHEN use_pipeline THEN (SELECT p.steps FROM {{schema}}.pipelines() p
                                       WHERE p.media_type = brief_steps.media_type)
              ELSE {{rule:single_step}} END
$$;

CREATE OR REPLACE FUNCTION {{schema}}.check_job(type text, payload jsonb, priority bigint, run_at timestamp with time zone, delay double precision, max_attempts bigint, timeout double precision, queue text, unique_key text, unique_for double precision, depends_on bigint[])
 RETURNS void
 LANGUAGE plpgsql
 STABLE
AS $$
DECLARE
  v_ref bigint;
BEGIN
  PERFORM {{schema}}.check_text('type', check_job.type, {{rule:max_type_length}});
  PERFORM {{schema}}.check_text('queue', check_job.queue, {{rule:max_type_length}});
  IF check_job.payload IS NOT NULL THEN
    PERFORM {{schema}}.check_json_depth('payload', check_job.payload, {{rule:max_payload_depth}});
  END IF;
  IF check_job.priority IS NULL OR check_job.priority NOT BETWEEN {{rule:min_int32}} AND {{rule:max_int32}} THEN
    PERFORM {{schema}}.raise_invalid({{rule:priority_message}}, 'priority');
  END IF;
  IF check_job.max_attempts IS NULL OR check_job.max_attempts NOT BETWEEN 1 AND {{rule:max_int32}} THEN
    PERFORM {{schema}}.raise_invalid({{rule:max_attempts_message}}, 'max_attempts');
  END IF;
  IF check_job.timeout IS NOT NULL THEN
    PERFORM {{schema}}.check_seconds('timeout', check_job.timeout, {{rule:max_timeout_seconds}}, true);
  END IF;
  IF check_job.run_at IS NOT NULL AND check_job.delay IS NOT NULL THEN
    PERFORM {{schema}}.raise_invalid('give run_at or delay, not both', 'delay');
  END IF;
  IF check_job.run_at IS NOT NULL
     AND NOT (check_job.run_at >= {{rule:min_run_at}} AND check_job.run_at < {{rule:max_run_at}}) THEN
    PERFORM {{schema}}.raise_invalid({{rule:run_at_message}} || check_job.run_at,
      'run_at');
  END IF;
  IF check_job.delay IS NOT NULL THEN
    PERFORM {{schema}}.check_seconds('delay', check_job.delay, {{rule:max_delay_seconds}}, false);
  END IF;
  IF check_job.unique_key IS NOT NULL THEN
    PERFORM {{schema}}.check_text('unique_key', check_job.unique_key, {{rule:max_unique_key_length}}, true);
    IF check_job.unique_key = '' THEN
      PERFORM {{schema}}.raise_invalid({{rule:unique_key_message}});
    END IF;
  END IF;
  IF check_job.unique_for IS NOT NULL THEN
    IF check_job.unique_key IS NULL THEN
      PERFORM {{schema}}.raise_invalid('unique_for needs a unique_key');
    END IF;
    PERFORM {{schema}}.check_seconds('unique_for', check_job.unique_for, {{rule:max_hold_seconds}}, true);
  END IF;
  -- dependencies.check_depends_on
  FOREACH v_ref IN ARRAY coalesce(check_job.depends_on, '{}') LOOP
    IF v_ref IS NULL OR v_ref < 1 THEN
      PERFORM {{schema}}.raise_invalid('depends_on entries must be job ids, not ' || coalesce(v_ref::text, 'None'));
    END IF;
  END LOOP;
  IF (SELECT count(DISTINCT r) FROM unnest(check_job.depends_on) r) > {{rule:max_dependencies}} THEN
    PERFORM {{schema}}.raise_invalid(format('a job may depend on at most %s jobs, not %s', {{rule:max_dependencies}},
                                            (SELECT count(DISTINCT r) FROM unnest(check_job.depends_on) r)));
  END IF;
END $$;

CREATE OR REPLACE FUNCTION {{schema}}.create_brief_with_job(user_id text DEFAULT NULL::text, title text DEFAULT ''::text, description text DEFAULT ''::text, query text DEFAULT NULL::text, media_type text DEFAULT NULL::text, use_pipeline boolean DEFAULT false, steps text[] DEFAULT NULL::text[], options jsonb DEFAULT NULL::jsonb, priority bigint DEFAULT 0, max_attempts bigint DEFAULT {{rule:default_max_attempts}}, queue text DEFAULT 'default'::text, fairness_key text DEFAULT NULL::text)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $$
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
  PERFORM {{schema}}.check_text('user_id', create_brief_with_job.user_id, {{rule:max_user_id_length}});
  PERFORM {{schema}}.check_text('title', create_brief_with_job.title, {{rule:max_title_length}}, true);
  PERFORM {{schema}}.check_text('description', create_brief_with_job.description, {{rule:max_text_length}}, true);
  PERFORM {{schema}}.check_text('query', create_brief_with_job.query, {{rule:max_text_length}});
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
    IF coalesce(cardinality(create_brief_with_job.steps), 0) NOT BETWEEN 1 AND {{rule:max_steps}} THEN
      PERFORM {{schema}}.raise_invalid({{rule:steps_message}});
    END IF;
    FOREACH v_step IN ARRAY create_brief_with_job.steps LOOP
      IF v_step IS NULL OR {{schema}}.is_blank(v_step) OR length(v_step) > {{rule:max_type_length}} THEN
        PERFORM {{schema}}.raise_invalid({{rule:step_message}} || {{schema}}.repr(v_step));
      END IF;
    END LOOP;
    v_plan := create_brief_with_job.steps;
  END IF;
  IF create_brief_with_job.fairness_key IS NOT NULL THEN
    PERFORM {{schema}}.check_text('fairness_key', create_brief_with_job.fairness_key, {{rule:max_fairness_key_length}}, true);
  END IF;
  IF create_brief_with_job.options IS NOT NULL THEN
    IF jsonb_typeof(create_brief_with_job.options) <> 'object' THEN
      PERFORM {{schema}}.raise_invalid('options must be a mapping of extra payload fields');
    END IF;
    PERFORM {{schema}}.check_json_depth('options', create_brief_with_job.options, {{rule:max_payload_depth}});
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
    INSERT INTO {{schema}}.jobs AS j (type, queue, status, priority, payload, max_attempts, brief_id, fairness_key)
    SELECT s.step, create_brief_with_job.queue,
           CASE WHEN s.n = 1 THEN 'pending' ELSE 'waiting' END::{{schema}}.job_status,
           create_brief_with_job.priority, v_payload, create_brief_with_job.max_attempts, v_brief_id,
           coalesce(create_brief_with_job.fairness_key, create_brief_with_job.user_id)
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

CREATE OR REPLACE FUNCTION {{schema}}.create_job(type text, payload jsonb DEFAULT '{}'::jsonb, priority bigint DEFAULT 0, run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, delay double precision DEFAULT NULL::double precision, max_attempts bigint DEFAULT {{rule:default_max_attempts}}, timeout double precision DEFAULT NULL::double precision, brief_id uuid DEFAULT NULL::uuid, queue text DEFAULT 'default'::text, unique_key text DEFAULT NULL::text, unique_for double precision DEFAULT NULL::double precision, depends_on bigint[] DEFAULT NULL::bigint[], fairness_key text DEFAULT NULL::text)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $$
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
  IF create_job.fairness_key IS NOT NULL THEN
    PERFORM {{schema}}.check_text('fairness_key', create_job.fairness_key, {{rule:max_fairness_key_length}}, true);
  END IF;
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
      FROM {{schema}}.insert_unique_job_v2(create_job.type, create_job.queue, create_job.priority::integer,
                                           coalesce(create_job.payload, '{}'), create_job.max_attempts::integer,
                                           v_run_at, create_job.timeout, create_job.brief_id, create_job.unique_key,
                                           create_job.unique_for, coalesce(create_job.fairness_key, '')) u;
    RETURN {{schema}}.job_document(v_unique.job) || jsonb_build_object('duplicate', v_unique.duplicate);
  END IF;
  IF v_parents IS NOT NULL THEN
    v_status := {{schema}}.check_parents('the job', v_parents);
  END IF;
  INSERT INTO {{schema}}.jobs AS j (type, queue, status, priority, payload, max_attempts, run_at, timeout_seconds,
                                    brief_id, fairness_key)
  VALUES (create_job.type, create_job.queue, v_status, create_job.priority, coalesce(create_job.payload, '{}'),
          create_job.max_attempts, v_run_at, create_job.timeout, create_job.brief_id,
          coalesce(create_job.fairness_key, ''))
  RETURNING j.* INTO v_row;
  IF v_parents IS NULL THEN
    RETURN to_jsonb(v_row) || '{"depends_on": [], "duplicate": false}'::jsonb;
  END IF;
  -- The trigger job_dependencies_check re-checks under its locks and settles waiting or pending.
  INSERT INTO {{schema}}.job_dependencies (job_id, depends_on) SELECT v_row.id, p FROM unnest(v_parents) p;
  SELECT * INTO v_row FROM {{schema}}.jobs j WHERE j.id = v_row.id;
  RETURN {{schema}}.job_document(v_row) || jsonb_build_object('duplicate', false);
END $$;

CREATE OR REPLACE FUNCTION {{schema}}.create_jobs(jobs jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $$
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
  v_fairness text[] := '{}';
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
                     'queue', 'unique_key', 'unique_for', 'depends_on', 'key', 'fairness_key')
     ORDER BY k COLLATE "C" LIMIT 1;
    IF v_name IS NOT NULL THEN
      PERFORM {{schema}}.raise_invalid(format('job #%s: unknown field %s', v_i, {{schema}}.repr(v_name)));
    END IF;
    BEGIN
      -- client._bulk_row: the key, then depends_on (ids and keys), then create_job's checks.
      v_key := NULL;
      IF v_item ? 'key' AND jsonb_typeof(v_item -> 'key') <> 'null' THEN
        IF jsonb_typeof(v_item -> 'key') <> 'string' OR {{schema}}.is_blank(v_item ->> 'key')
           OR length(v_item ->> 'key') > {{rule:max_key_length}} THEN
          PERFORM {{schema}}.raise_invalid({{rule:key_message}});
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
            IF {{schema}}.is_blank(v_ref #>> '{}') OR length(v_ref #>> '{}') > {{rule:max_key_length}} THEN
              PERFORM {{schema}}.raise_invalid({{rule:depends_on_key_message}});
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
      IF jsonb_array_length(v_ref) > {{rule:max_dependencies}} THEN
        PERFORM {{schema}}.raise_invalid(format('a job may depend on at most %s jobs, not %s', {{rule:max_dependencies}},
                                                jsonb_array_length(v_ref)));
      END IF;
      v_type := v_type || {{schema}}.job_field_text(v_item, 'type', NULL);
      v_queue := v_queue || {{schema}}.job_field_text(v_item, 'queue', 'default');
      PERFORM {{schema}}.check_text('type', v_type[v_i + 1], {{rule:max_type_length}});
      PERFORM {{schema}}.check_text('queue', v_queue[v_i + 1], {{rule:max_type_length}});
      v_payload := v_payload || coalesce(nullif(v_item -> 'payload', 'null'), '{}');
      v_priority := v_priority || {{schema}}.job_field_integer(
        v_item, 'priority', 0, {{rule:priority_message}});
      v_max_attempts := v_max_attempts || {{schema}}.job_field_integer(
        v_item, 'max_attempts', {{rule:default_max_attempts}}, {{rule:max_attempts_message}});
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
      v_fairness := v_fairness || coalesce({{schema}}.job_field_text(v_item, 'fairness_key', NULL), '');
      PERFORM {{schema}}.check_text('fairness_key', v_fairness[v_i + 1], {{rule:max_fairness_key_length}}, true);
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
                                      timeout_seconds, brief_id, fairness_key)
    SELECT nextval(pg_get_serial_sequence('{{schema}}.jobs', 'id')), v_type[o.i], v_queue[o.i], v_status[o.i],
           v_priority[o.i], v_payload[o.i], v_max_attempts[o.i], coalesce(v_run_at[o.i], now()), v_timeout[o.i],
           v_brief[o.i], v_fairness[o.i]
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

CREATE OR REPLACE FUNCTION {{schema}}.list_briefs(user_id text DEFAULT NULL::text, status text DEFAULT NULL::text, before timestamp with time zone DEFAULT NULL::timestamp with time zone, "limit" integer DEFAULT 50)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
AS $$
BEGIN
  IF list_briefs.status IS NOT NULL
     AND list_briefs.status NOT IN ('failed', 'cancelled', 'completed', 'processing', 'pending') THEN
    PERFORM {{schema}}.raise_invalid(format('status must be one of failed, cancelled, completed, processing, pending, '
                                            'not %s', {{schema}}.repr(list_briefs.status)));
  END IF;
  IF list_briefs."limit" IS NULL OR list_briefs."limit" NOT BETWEEN 1 AND {{rule:max_list_limit}} THEN
    PERFORM {{schema}}.raise_invalid({{rule:list_limit_message}});
  END IF;
  IF list_briefs.user_id IS NOT NULL THEN
    PERFORM {{schema}}.check_text('user_id', list_briefs.user_id, {{rule:max_user_id_length}});
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
