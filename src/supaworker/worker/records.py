"""Where a worker's attempts leave their records: start records, progress and completions. Each is batched by a
writer of its own (starter.py, progress.py, completer.py) and written on its own or beside a claim."""

from __future__ import annotations

from dataclasses import dataclass

from .completer import Completer
from .progress import ProgressWriter
from .starter import StartRecorder


@dataclass(frozen=True, slots=True)
class Recorders:
    starts: StartRecorder
    progress: ProgressWriter
    completions: Completer
