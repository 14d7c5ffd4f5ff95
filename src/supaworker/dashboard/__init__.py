"""The live dashboard at `/test-worker`: server-rendered panels, updated over SSE."""

from .views import add_dashboard

__all__ = ["add_dashboard"]
