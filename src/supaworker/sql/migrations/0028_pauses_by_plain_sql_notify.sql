-- 0028: a pause or resume made with plain SQL reaches the workers as set_job_paused()'s does.
--
-- Only set_job_paused() sent `paused:<scope>:<name>` (0026) and the wake-up on resume, so `UPDATE job_controls
-- SET paused = true` stopped new claims but left the jobs workers had claimed ahead running, and a resume
-- woke nobody: workers found the jobs at their next poll. A trigger now notifies for every change of
-- `paused` however it is made, and set_job_paused() leaves it to the trigger. It fires only when `paused` is
-- named in an UPDATE, so the claims' rate-window updates of the same rows never run it.

CREATE FUNCTION {{schema}}.notify_job_paused() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.paused THEN
      PERFORM pg_catalog.pg_notify({{channel}}, '');
    END IF;
  ELSIF NEW.paused AND (TG_OP = 'INSERT' OR NOT OLD.paused) THEN
    PERFORM pg_catalog.pg_notify({{channel}}, 'paused:' || NEW.scope || ':' || NEW.name);
  ELSIF NOT NEW.paused AND TG_OP = 'UPDATE' AND OLD.paused THEN
    PERFORM pg_catalog.pg_notify({{channel}}, '');
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER job_controls_notify_paused
  AFTER INSERT OR DELETE OR UPDATE OF paused ON {{schema}}.job_controls
  FOR EACH ROW EXECUTE FUNCTION {{schema}}.notify_job_paused();

CREATE OR REPLACE FUNCTION {{schema}}.set_job_paused(p_scope text, p_name text, p_paused boolean)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
BEGIN
  INSERT INTO {{schema}}.job_controls (scope, name, paused) VALUES (p_scope, p_name, p_paused)
  ON CONFLICT (scope, name) DO UPDATE SET paused = excluded.paused, updated_at = now();
  PERFORM {{schema}}.drop_empty_job_control(p_scope, p_name);
  RETURN p_paused;
END $function$;

INSERT INTO {{schema}}.owned_objects (type, identity)
SELECT o.type, o.identity
  FROM pg_identify_object('pg_proc'::regclass, '{{schema}}.notify_job_paused()'::regprocedure, 0) o
ON CONFLICT DO NOTHING;
