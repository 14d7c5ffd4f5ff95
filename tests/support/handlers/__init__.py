"""Handler modules for worker subprocesses (`supaworker worker --import tests.support.handlers.<module>`)."""
