-- 0015: securing the schema again takes no table lock it does not need.
--
-- `supaworker migrate` ends with secure_schema(), while the workers of the release before still claim jobs.
-- It enabled row level security on every table again, and exposed briefs made their policies and views
-- again; each of these takes an exclusive lock on jobs or briefs even when it changes nothing. Queued behind
-- running claims, that lock deadlocked with the next claim (which holds job_controls and waits for jobs), and
-- one of the two was cancelled. Now secure_schema() enables RLS only where it is off, and expose_briefs(true)
-- makes its policies and views again only when they are missing or their columns changed; the grants, which
-- lock nothing, are made every time.

CREATE OR REPLACE FUNCTION {{schema}}.secure_schema() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp  -- regclass and regprocedure print schema-qualified names
AS $$
DECLARE
  v_schema oid := to_regnamespace((parse_ident('{{schema}}'))[1]);
  v_public_roles text := 'PUBLIC';
  v_service boolean := EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role');
  v_relations regclass[];
  v_relation regclass;
  v_kind "char";
  v_object record;
BEGIN
  SELECT string_agg(r, ', ') INTO v_public_roles
    FROM unnest(ARRAY['PUBLIC', 'anon', 'authenticated']) r
   WHERE r = 'PUBLIC' OR EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r);

  IF EXISTS (SELECT 1 FROM {{schema}}.owned_objects o, pg_identify_object('pg_namespace'::regclass, v_schema, 0) i
              WHERE o.type = i.type AND o.identity = i.identity) THEN
    EXECUTE format('REVOKE ALL ON SCHEMA %s FROM %s', v_schema::regnamespace, v_public_roles);
    IF v_service THEN
      EXECUTE format('GRANT USAGE ON SCHEMA %s TO service_role', v_schema::regnamespace);
    END IF;
  END IF;

  -- Read the list first: the loop alters owned_objects itself, which an open query on it would forbid.
  SELECT array_agg(c.oid::regclass ORDER BY c.oid) INTO v_relations
    FROM pg_class c CROSS JOIN LATERAL pg_identify_object('pg_class'::regclass, c.oid, 0) i
    JOIN {{schema}}.owned_objects o ON o.type = i.type AND o.identity = i.identity
   WHERE c.relnamespace = v_schema;
  FOREACH v_relation IN ARRAY coalesce(v_relations, '{}') LOOP
    v_kind := (SELECT relkind FROM pg_class WHERE oid = v_relation);
    IF v_kind = 'S' THEN
      EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM %s', v_relation, v_public_roles);
      IF v_service THEN
        EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO service_role', v_relation);
      END IF;
      CONTINUE;
    END IF;
    EXECUTE format('REVOKE ALL ON TABLE %s FROM %s', v_relation, v_public_roles);
    IF v_service THEN
      EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO service_role', v_relation);
    END IF;
    -- Tables only: views run as their owner and have no RLS of their own.
    -- Only where it is off: ALTER TABLE takes an exclusive lock even when it changes nothing.
    IF v_kind IN ('r', 'p') THEN
      IF NOT (SELECT relrowsecurity FROM pg_class WHERE oid = v_relation) THEN
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', v_relation);
      END IF;
      -- Supabase's service_role bypasses RLS; a policy keeps it working where a copy of the role does not.
      IF v_service AND NOT EXISTS (
           SELECT 1 FROM pg_policy WHERE polrelid = v_relation AND polname = 'service_role_all') THEN
        EXECUTE format('CREATE POLICY service_role_all ON %s TO service_role USING (true) WITH CHECK (true)',
                       v_relation);
      END IF;
    END IF;
  END LOOP;

  FOR v_object IN
    SELECT p.oid::regprocedure AS name
      FROM pg_proc p CROSS JOIN LATERAL pg_identify_object('pg_proc'::regclass, p.oid, 0) i
      JOIN {{schema}}.owned_objects o ON o.type = i.type AND o.identity = i.identity
     WHERE p.pronamespace = v_schema
     ORDER BY p.oid
  LOOP
    EXECUTE format('REVOKE ALL ON ROUTINE %s FROM %s', v_object.name, v_public_roles);
    IF v_service THEN
      EXECUTE format('GRANT EXECUTE ON ROUTINE %s TO service_role', v_object.name);
    END IF;
  END LOOP;

  -- secure_schema() itself is only for the owner: it re-grants, so service_role must not run it, nor
  -- change the list it works from.
  IF v_service THEN
    EXECUTE format('REVOKE INSERT, UPDATE, DELETE ON TABLE %s FROM service_role',
                   '{{schema}}.owned_objects'::regclass);
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM service_role', '{{schema}}.secure_schema()'::regprocedure);
  END IF;

  IF EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = '{{schema}}.briefs'::regclass AND polname = 'briefs_owner_select')
  THEN
    PERFORM {{schema}}.expose_briefs(true);
  END IF;
END $$;

CREATE OR REPLACE FUNCTION {{schema}}.expose_briefs(p_enabled boolean DEFAULT true) RETURNS boolean
LANGUAGE plpgsql
SET client_min_messages = warning
AS $$
DECLARE
  v_schema text := (parse_ident('{{schema}}'))[1];
  v_step_columns text := (SELECT string_agg(quote_ident(c), ', ') FROM unnest({{schema}}.brief_step_columns()) c);
  v_current boolean;
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

  -- Exposed as this release exposes them: both policies there, and both views with the columns they show.
  v_current := p_enabled
    AND EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = '{{schema}}.briefs'::regclass AND polname = 'briefs_owner_select')
    AND EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = '{{schema}}.jobs'::regclass AND polname = 'jobs_brief_owner_select')
    AND to_regclass(format('%I.user_briefs', v_schema)) IS NOT NULL
    AND to_regclass(format('%I.user_brief_steps', v_schema)) IS NOT NULL
    AND ARRAY(SELECT a.attname::text FROM pg_attribute a
               WHERE a.attrelid = to_regclass(format('%I.user_brief_steps', v_schema)) AND a.attnum > 0
               ORDER BY a.attnum) = {{schema}}.brief_step_columns()::text[]
    AND ARRAY(SELECT a.attname::text FROM pg_attribute a
               WHERE a.attrelid = to_regclass(format('%I.user_briefs', v_schema)) AND a.attnum > 0
               ORDER BY a.attnum)
      = ARRAY(SELECT a.attname::text FROM pg_attribute a
               WHERE a.attrelid = '{{schema}}.briefs_with_status'::regclass AND a.attnum > 0 AND NOT a.attisdropped
               ORDER BY a.attnum);
  IF NOT v_current THEN
    EXECUTE format('DROP POLICY IF EXISTS briefs_owner_select ON %I.briefs', v_schema);
    EXECUTE format('DROP POLICY IF EXISTS jobs_brief_owner_select ON %I.jobs', v_schema);
    EXECUTE format('DROP VIEW IF EXISTS %I.user_brief_steps', v_schema);
    EXECUTE format('DROP VIEW IF EXISTS %I.user_briefs', v_schema);
  END IF;
  EXECUTE format('REVOKE ALL ON %I.briefs FROM authenticated', v_schema);
  EXECUTE format('REVOKE ALL ON %I.jobs FROM authenticated', v_schema);
  IF NOT p_enabled THEN
    -- USAGE on the schema is left to secure_schema(), which takes it back from authenticated.
    EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM authenticated', v_schema);
    RETURN false;
  END IF;

  IF NOT v_current THEN
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
                   'WHERE brief_id IS NOT NULL', v_schema, v_step_columns, v_schema);
  END IF;
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO authenticated', v_schema);
  EXECUTE format('GRANT SELECT ON %I.briefs TO authenticated', v_schema);
  EXECUTE format('GRANT SELECT (%s) ON %I.jobs TO authenticated', v_step_columns, v_schema);
  EXECUTE format('GRANT SELECT ON %I.user_briefs, %I.user_brief_steps TO authenticated', v_schema, v_schema);
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
    EXECUTE format('GRANT SELECT ON %I.user_briefs, %I.user_brief_steps TO service_role', v_schema, v_schema);
  END IF;
  EXECUTE format('GRANT EXECUTE ON FUNCTION %I.request_user_id() TO authenticated', v_schema);
  RETURN true;
END $$;
