-- Asks PostgREST to reload its schema cache (after a change of what it exposes).
NOTIFY pgrst, 'reload schema'
