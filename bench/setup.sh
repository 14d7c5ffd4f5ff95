#!/usr/bin/env bash
# Create the bench-only environments for the peer systems. Nothing here is a dependency of supaworker.
#   bench/.venv-peers  Python 3.11: pgqueuer, procrastinate, psycopg, matplotlib (also runs bench/run.py)
#   bench/.venv-oban   Python 3.12: oban (oban-py needs Python >= 3.12)
#   bench/node_modules graphile-worker, bullmq (from bench/package.json)
# Re-running is safe; pass --fresh to delete and recreate everything.
set -euo pipefail
cd "$(dirname "$0")"

PY311="${PY311:-$(command -v python3.11 || true)}"
PY312="${PY312:-$HOME/.pyenv/versions/3.12.1/bin/python}"

if [[ "${1:-}" == "--fresh" ]]; then
  rm -rf .venv-peers .venv-oban node_modules
fi

status=0

if [[ -n "$PY311" ]]; then
  [[ -d .venv-peers ]] || "$PY311" -m venv .venv-peers
  .venv-peers/bin/pip install -q --upgrade pip
  .venv-peers/bin/pip install -q -r requirements-peers.txt || { echo "setup: .venv-peers install failed" >&2; status=1; }
else
  echo "setup: no python3.11 found (set PY311)" >&2; status=1
fi

if [[ -x "$PY312" ]]; then
  [[ -d .venv-oban ]] || "$PY312" -m venv .venv-oban
  .venv-oban/bin/pip install -q --upgrade pip
  .venv-oban/bin/pip install -q -r requirements-oban.txt || { echo "setup: .venv-oban install failed" >&2; status=1; }
else
  echo "setup: no Python 3.12 at $PY312 (set PY312); oban will be skipped" >&2; status=1
fi

if command -v npm >/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error || { echo "setup: npm ci failed" >&2; status=1; }
else
  echo "setup: npm not found; graphile-worker and bullmq will be skipped" >&2; status=1
fi

exit $status
