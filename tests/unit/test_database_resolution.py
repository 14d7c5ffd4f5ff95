"""Where a library call finds its database: DATABASE_URL, never an embedded server of its own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import supaworker
from supaworker import client
from supaworker.config import Settings, get_settings
from supaworker.db import resolve_conninfo, resolve_read_conninfo
from supaworker.errors import ConfigError


@pytest.fixture(autouse=True)
def no_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith(("SUPAWORKER_", "DATABASE_URL", "SUPABASE", "NEXT_PUBLIC_SUPABASE")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env.local
    data_dir = tmp_path / "pgdata"
    monkeypatch.setenv("SUPAWORKER_EMBEDDED_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    client.close()
    yield data_dir
    client.close()
    get_settings.cache_clear()


def test_create_job_without_database_url_raises_config_error_and_starts_no_server(no_database: Path) -> None:
    with pytest.raises(ConfigError, match="set DATABASE_URL") as raised:
        supaworker.create_job("analysis", {"x": 1})
    assert "only for `supaworker up` and the CLI" in str(raised.value)
    assert not no_database.exists()


def test_without_database_url_the_supabase_http_settings_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_URL", "https://project.supabase.co")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "service-role-key")
    settings = Settings()
    assert settings.uses_http
    with pytest.raises(ConfigError, match="SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are set") as raised:
        resolve_conninfo(settings)
    assert "DATABASE_URL" in str(raised.value)


def test_a_database_url_is_used_as_given_and_the_embedded_one_only_when_allowed() -> None:
    url = "postgresql://u@db.example.com:5432/app"
    assert resolve_conninfo(Settings(DATABASE_URL=url)) == url
    assert resolve_conninfo(Settings(DATABASE_URL=url), allow_embedded=True) == url
    with pytest.raises(ConfigError, match="not a valid connection string"):
        resolve_conninfo(Settings(DATABASE_URL="host=x port"))


def test_read_url_is_optional_and_checked_like_the_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_read_conninfo(Settings()) is None
    monkeypatch.setenv("SUPAWORKER_READ_URL", "  ")
    assert resolve_read_conninfo(Settings()) is None  # blank: reads stay on the primary
    replica = "postgresql://u@replica.example.com:5432/app"
    monkeypatch.setenv("SUPAWORKER_READ_URL", replica)
    assert resolve_read_conninfo(Settings()) == replica
    with pytest.raises(ConfigError, match="SUPAWORKER_READ_URL is not a valid connection string"):
        resolve_read_conninfo(Settings(SUPAWORKER_READ_URL="host=x port"))
