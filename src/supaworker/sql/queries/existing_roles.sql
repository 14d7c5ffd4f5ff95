-- Which of the given roles exist on this server (schema.sql shows the grants to Supabase's roles).
SELECT rolname FROM pg_roles WHERE rolname = ANY (%(roles)s::text[]) ORDER BY 1
