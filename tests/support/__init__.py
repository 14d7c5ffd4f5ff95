"""What the test layers share: waiting for a condition, the API app on a port, an in-process worker, and the
handler modules worker subprocesses import (`--import tests.support.handlers.<name>`)."""
