"""The REST API (`/api/...`, OpenAPI at `/docs`), server-sent events, and Prometheus metrics."""

from .app import create_app
from .settings import ApiSettings, get_api_settings

__all__ = ["ApiSettings", "create_app", "get_api_settings"]
