-- Turns end users' reads of their own briefs on or off (expose_briefs() in sql/schema.sql).
SELECT {{schema}}.expose_briefs(%(enabled)s)
