-- Turns end users' reads of their own briefs on or off (see expose_briefs() in migration 0008).
SELECT {{schema}}.expose_briefs(%(enabled)s)
