-- 0028: workers hear of every change of a pause or a rate limit, however it is made.
--
-- Only set_job_paused() sent `paused:<scope>:<name>` (0026) and the wake-up on resume, so `UPDATE job_controls
-- SET paused = true` stopped new claims but left the jobs workers had claimed ahead running, and a resume
-- woke nobody: workers found the jobs at their next poll. A trigger now notifies for every change of
-- `paused` however it is made, and set_job_paused() leaves it to the trigger. It also sends
-- `limits:<scope>:<name>` when a rate limit is set, changed or removed: an idle worker looks again once a
-- window of its types has passed, and needs to know the windows (nothing tells it one opened; a 0.5 s window
-- under the 1 s poll drained at half the rate). It fires only when those columns are named in an UPDATE, so
-- the claims' updates of the window counts never run it. Workers of the previous release take `limits:...`
-- for a wake-up, as any payload but `cancel:...`.

CREATE FUNCTION {{schema}}.notify_job_controls() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.paused THEN
      PERFORM pg_catalog.pg_notify({{channel}}, '');
    END IF;
    IF OLD.rate_limit IS NOT NULL THEN
      PERFORM pg_catalog.pg_notify({{channel}}, 'limits:' || OLD.scope || ':' || OLD.name);
    END IF;
    RETURN NULL;
  END IF;
  IF NEW.paused AND (TG_OP = 'INSERT' OR NOT OLD.paused) THEN
    PERFORM pg_catalog.pg_notify({{channel}}, 'paused:' || NEW.scope || ':' || NEW.name);
  ELSIF NOT NEW.paused AND TG_OP = 'UPDATE' AND OLD.paused THEN
    PERFORM pg_catalog.pg_notify({{channel}}, '');
  END IF;
  IF (TG_OP = 'INSERT' AND NEW.rate_limit IS NOT NULL)
     OR (TG_OP = 'UPDATE'
         AND (NEW.rate_limit, NEW.rate_period_seconds) IS DISTINCT FROM (OLD.rate_limit, OLD.rate_period_seconds)) THEN
    PERFORM pg_catalog.pg_notify({{channel}}, 'limits:' || NEW.scope || ':' || NEW.name);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER job_controls_notify
  AFTER INSERT OR DELETE OR UPDATE OF paused, rate_limit, rate_period_seconds ON {{schema}}.job_controls
  FOR EACH ROW EXECUTE FUNCTION {{schema}}.notify_job_controls();

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
  FROM pg_identify_object('pg_proc'::regclass, '{{schema}}.notify_job_controls()'::regprocedure, 0) o
ON CONFLICT DO NOTHING;
