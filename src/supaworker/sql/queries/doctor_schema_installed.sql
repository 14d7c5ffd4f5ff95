-- Whether the schema exists, and whether it has migration 0009's list of supaworker's own objects.
SELECT to_regnamespace(%(schema)s) IS NOT NULL,
       to_regclass(quote_ident(%(schema)s) || '.owned_objects') IS NOT NULL
