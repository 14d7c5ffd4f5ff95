-- 0026: a pause reaches the jobs workers had already claimed ahead.
--
-- A pause stopped claims at once, but a worker still started the jobs of the paused type or queue it held
-- claimed ahead of its slots (its prefetch: about 0.1 s of work by default, up to 500 jobs with --prefetch
-- 500). set_job_paused() now also sends `paused:<scope>:<name>` on the jobs channel when it pauses, and a
-- listening worker hands back (uncharged) the jobs of that type or queue it holds but has not started.
-- Redefined from 0003 (same signature and result). Workers of the previous release take the payload for a
-- wake-up, as any payload but `cancel:...`.

CREATE OR REPLACE FUNCTION {{schema}}.set_job_paused(p_scope text, p_name text, p_paused boolean)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
BEGIN
  INSERT INTO {{schema}}.job_controls (scope, name, paused) VALUES (p_scope, p_name, p_paused)
  ON CONFLICT (scope, name) DO UPDATE SET paused = excluded.paused, updated_at = now();
  PERFORM {{schema}}.drop_empty_job_control(p_scope, p_name);
  IF p_paused THEN
    PERFORM pg_notify({{channel}}, 'paused:' || p_scope || ':' || p_name);
  ELSE
    PERFORM pg_notify({{channel}}, '');
  END IF;
  RETURN p_paused;
END $function$;
