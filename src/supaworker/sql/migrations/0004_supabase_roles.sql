-- 0004: locks the schema down for Supabase (and any database exposed through PostgREST).
--
-- Supabase exposes the database over HTTP to anyone holding the public anon key, and every new function is
-- executable by PUBLIC by default. So: row-level security on every supaworker table, nothing for PUBLIC,
-- `anon` or `authenticated`, and exactly what workers and the API need for `service_role`. On plain
-- Postgres, where those roles do not exist, only the role-independent part applies; running
-- secure_schema() again after creating the roles grants them (`supaworker doctor` says when).

-- Functions created later by the migrating role in this schema are not executable by PUBLIC either.
ALTER DEFAULT PRIVILEGES IN SCHEMA {{schema}} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- Idempotent: enables RLS and re-applies the grants on whatever the schema holds now.
CREATE FUNCTION {{schema}}.secure_schema() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_schema text := (parse_ident('{{schema}}'))[1];  -- the rendered, quoted name, unquoted
  v_role text;
  v_table record;
BEGIN
  EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', v_schema);
  EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM PUBLIC', v_schema);
  EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM PUBLIC', v_schema);
  EXECUTE format('REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA %I FROM PUBLIC', v_schema);

  -- Tables only (views run as their owner and have no RLS of their own: they are simply not granted).
  FOR v_table IN
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = v_schema AND c.relkind IN ('r', 'p')
  LOOP
    EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', v_schema, v_table.relname);
  END LOOP;

  FOREACH v_role IN ARRAY ARRAY['anon', 'authenticated'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_role) THEN
      EXECUTE format('REVOKE ALL ON SCHEMA %I FROM %I', v_schema, v_role);
      EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I', v_schema, v_role);
      EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM %I', v_schema, v_role);
      EXECUTE format('REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA %I FROM %I', v_schema, v_role);
    END IF;
  END LOOP;

  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO service_role', v_schema);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO service_role', v_schema);
    EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO service_role', v_schema);
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO service_role', v_schema);
    -- Supabase's service_role bypasses RLS; a policy keeps it working where a copy of the role does not.
    FOR v_table IN
      SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = v_schema AND c.relkind IN ('r', 'p')
         AND NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'service_role_all')
    LOOP
      EXECUTE format('CREATE POLICY service_role_all ON %I.%I TO service_role USING (true) WITH CHECK (true)',
                     v_schema, v_table.relname);
    END LOOP;
  END IF;
  -- secure_schema() itself is only for the owner: it re-grants, so service_role must not run it.
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %I.secure_schema() FROM service_role', v_schema);
  END IF;
END $$;

SELECT {{schema}}.secure_schema();

-- The ledger is no secret, and every role that runs supaworker (a worker role of the user's own, which is
-- neither owner nor BYPASSRLS) must read it to check the schema version. Table privileges still decide
-- who may read it at all: anon and authenticated have none.
CREATE POLICY migrations_readable ON {{schema}}.migrations FOR SELECT USING (true);
