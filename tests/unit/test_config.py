"""Settings from the environment and .env.local, with the names users of the old system know."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from supaworker.config import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("SUPAWORKER_", "WORKER_", "DATABASE_URL", "SUPABASE", "LOG_", "ENABLE_HEALTH", "HEALTH_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_match_the_documented_ones() -> None:
    s = Settings()
    assert (s.database_url, s.schema_name, s.log_level, s.enable_health_check, s.health_check_port) == (
        None, "supaworker", "info", True, 3001,
    )  # fmt: skip
    assert (s.max_concurrent_jobs, s.poll_interval_seconds, s.job_timeout_seconds) == (10, 1.0, 300.0)


def test_environment_names_of_the_old_system_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_DB_URL", "postgresql://u@h/db")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("ENABLE_HEALTH_CHECK", "false")
    monkeypatch.setenv("HEALTH_CHECK_PORT", "4001")
    monkeypatch.setenv("MAX_CONCURRENT_JOBS", "25")
    monkeypatch.setenv("POLL_INTERVAL_MS", "250")
    monkeypatch.setenv("JOB_TIMEOUT_MS", "60000")
    s = Settings()
    assert s.database_url == "postgresql://u@h/db" and s.log_level == "debug"
    assert (s.enable_health_check, s.health_check_port, s.max_concurrent_jobs) == (False, 4001, 25)
    assert (s.poll_interval_seconds, s.job_timeout_seconds) == (0.25, 60.0)


def test_env_local_file_is_read_and_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env.local").write_text("DATABASE_URL=postgresql://from-file/db\nLOG_LEVEL=warning\n")
    monkeypatch.setenv("LOG_LEVEL", "error")
    s = Settings()
    assert (s.database_url, s.log_level) == ("postgresql://from-file/db", "error")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LOG_LEVEL", "loud", "LOG_LEVEL must be one of"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be one of text, json"),
        ("SUPAWORKER_SCHEMA", "bad-name;", "plain SQL identifier"),
        ("MAX_CONCURRENT_JOBS", "0", "greater than or equal to 1"),
        ("HEALTH_CHECK_PORT", "http", "valid integer"),
        ("HEALTH_CHECK_PORT", "70000", "less than or equal to 65535"),
        ("HEALTH_CHECK_PORT", "-1", "greater than or equal to 0"),
        ("SUPAWORKER_POOLER_MODE", "magic", "POOLER_MODE"),
    ],
)
def test_bad_settings_are_rejected_naming_the_problem(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()
