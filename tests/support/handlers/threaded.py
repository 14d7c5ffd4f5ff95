"""A handler module that starts a thread when imported, as some client libraries do. A supervisor that imported
it cannot fork its workers (a lock that thread held would stay held in every child): they start fresh."""

from __future__ import annotations

import threading

threading.Thread(target=threading.Event().wait, name="library-background", daemon=True).start()
