"""A handler that writes, as its job runs, the modules its worker process has loaded ($MODULES_FILE, JSON).

Loaded with `--import tests.support.handlers.startup`; imports nothing a worker would not load anyway.
"""

from __future__ import annotations

import json
import os
import sys

import supaworker


@supaworker.handler("report_modules")
async def report_modules(job: supaworker.Job) -> None:
    data = json.dumps(sorted(sys.modules)).encode()
    fd = os.open(os.environ["MODULES_FILE"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
