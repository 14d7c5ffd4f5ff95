-- 0009: supaworker changes privileges, row-level security and policies of its own objects only.
--
-- 0004's secure_schema() granted and revoked on ALL TABLES / FUNCTIONS IN SCHEMA and put RLS and a policy
-- on every table there. In a schema of its own that is the same thing; installed into `public` (done to keep
-- unqualified `FROM jobs` working) it took anon's access to the application's tables. Two rules now:
--
--   * `supaworker migrate` refuses to install into `public` or into a schema that already holds objects
--     (see migrate.py): a schema of its own is what lets the names `jobs`, `briefs` or `migrations` exist
--     twice, and schema-wide privileges be supaworker's to decide.
--   * owned_objects lists what supaworker created, and secure_schema() acts on nothing else, so an
--     installation that predates the refusal (or an object an application later adds to supaworker's
--     schema) is left alone. The schema's own privileges are changed only when supaworker owns the schema.
--
-- A list rather than "what the migrations created" found some other way: PostgreSQL records no creator,
-- and owners are no help (on Supabase `postgres` owns the application's tables too). Each later migration
-- that creates an object inserts it here; tests/integration/test_owned_objects.py checks that none is missed.
-- Rows name objects as pg_identify_object() does (type and schema-qualified identity): independent of
-- search_path and kept by pg_dump, unlike oids.

CREATE TABLE {{schema}}.owned_objects (
  type text NOT NULL,      -- pg_identify_object(...).type: 'schema', 'table', 'view', 'sequence', 'function', 'type'
  identity text NOT NULL,  -- pg_identify_object(...).identity, e.g. 'supaworker.claim_jobs(pg_catalog.text,...)'
  PRIMARY KEY (type, identity)
);

-- What an installation made before this migration holds. In a schema other than `public` that is everything
-- in it: such a schema was given to supaworker by name (the default `supaworker` or SUPAWORKER_SCHEMA), and
-- every migration before this one put its objects there. In `public`, only the names migrations 0001-0008
-- and the ledger created are supaworker's, and the schema itself is not.
WITH schema_oid AS (
  SELECT oid FROM pg_namespace WHERE nspname = (parse_ident('{{schema}}'))[1]
), candidates AS (
  SELECT 'pg_namespace'::regclass AS classid, n.oid AS objid, NULL::name AS name
    FROM pg_namespace n WHERE n.oid = (SELECT oid FROM schema_oid)
  UNION ALL
  SELECT 'pg_class'::regclass, c.oid, c.relname
    FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM schema_oid) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  UNION ALL
  SELECT 'pg_proc'::regclass, p.oid, p.proname
    FROM pg_proc p WHERE p.pronamespace = (SELECT oid FROM schema_oid)
  UNION ALL
  SELECT 'pg_type'::regclass, t.oid, t.typname
    FROM pg_type t
   WHERE t.typnamespace = (SELECT oid FROM schema_oid) AND t.typrelid = 0 AND t.typcategory <> 'A'
)
INSERT INTO {{schema}}.owned_objects (type, identity)
SELECT o.type, o.identity
  FROM candidates c
 CROSS JOIN LATERAL pg_identify_object(c.classid, c.objid, 0) o
 WHERE NOT EXISTS (  -- an extension's objects are the extension's
         SELECT 1 FROM pg_depend d WHERE d.classid = c.classid AND d.objid = c.objid AND d.deptype = 'e')
   AND ((parse_ident('{{schema}}'))[1] <> 'public'
        OR c.name = ANY (ARRAY[
          -- 0001-0007 and the ledger
          'jobs', 'jobs_id_seq', 'job_dependencies', 'briefs', 'job_controls', 'leaders', 'periodic_jobs',
          'migrations', 'job_stats', 'active_jobs', 'pending_jobs_queue', 'briefs_with_status', 'job_status',
          'advance_periodic_job', 'cancel_brief', 'cancel_dependents', 'cancel_job', 'check_job_dependencies',
          'claim_job', 'claim_jobs', 'claim_jobs_v2', 'complete_job', 'complete_jobs', 'drop_empty_job_control',
          'elect_leader', 'fail_job', 'heartbeat_jobs', 'insert_unique_job', 'notify_jobs_inserted',
          'prune_finished_jobs', 'release_jobs', 'rescue_expired_jobs', 'rescue_expired_jobs_v2', 'retry_brief',
          'retry_delay', 'retry_job', 'secure_schema', 'set_job_limits', 'set_job_paused', 'record_job_starts',
          'forget_job_starts', 'job_starts_of', 'forget_dead_job_starts', 'worker_starts',
          'unblock_dependents', 'update_job_progress',
          -- 0008
          'raise_invalid', 'repr', 'format_g', 'json_type_name', 'is_blank', 'check_text', 'check_seconds',
          'check_json_depth', 'check_job', 'check_parents', 'check_briefs_exist', 'job_document', 'brief_document',
          'pipelines', 'brief_steps', 'create_job', 'job_field_integer', 'job_field_text', 'job_field_seconds',
          'create_jobs', 'create_brief_with_job', 'get_job', 'get_brief', 'list_briefs', 'request_user_id',
          'brief_step_columns', 'expose_briefs', 'user_briefs', 'user_brief_steps']::name[]));

-- This table, and the views expose_briefs(true) creates (0008) whether or not they exist yet.
INSERT INTO {{schema}}.owned_objects (type, identity)
SELECT o.type, o.identity
  FROM pg_identify_object('pg_class'::regclass, '{{schema}}.owned_objects'::regclass, 0) o
UNION ALL
SELECT 'view', quote_ident((parse_ident('{{schema}}'))[1]) || '.' || v
  FROM unnest(ARRAY['user_briefs', 'user_brief_steps']) v
ON CONFLICT DO NOTHING;

-- Idempotent: re-applies the grants on supaworker's objects as they are now (`supaworker migrate` runs it
-- after every upgrade: per-schema default privileges cannot take back EXECUTE from PUBLIC, so a function a
-- migration creates is open to PUBLIC until this runs). What the owner opted into stays: briefs exposed to
-- end users (0008's expose_briefs) are exposed again at the end.
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
    IF v_kind IN ('r', 'p') THEN
      EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', v_relation);
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

SELECT {{schema}}.secure_schema();
