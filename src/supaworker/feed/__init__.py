"""The live feed: one cheap sample of the jobs table a second, fanned out to the dashboard, the event
streams and `/metrics`. It reads through the Store and knows nothing of HTTP."""

from .change_feed import SERIES_BUCKET_SECONDS, Bucket, ChangeFeed, Snapshot
from .metrics import JobMetrics

__all__ = ["SERIES_BUCKET_SECONDS", "Bucket", "ChangeFeed", "JobMetrics", "Snapshot"]
