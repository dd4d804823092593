"""The count of inferences a stand-in model served, kept in a file the tests read.

The file is rewritten (atomically) after every request, so a test reads the server's own count
while it runs, and compares it with what perfprobe says completed.
"""

from __future__ import annotations

import os
from pathlib import Path

COUNT_FILE_ENV = "PERFPROBE_TEST_COUNT_FILE"


class ServedCounter:
    """Counts requests served and writes the running total where the test asked."""

    def __init__(self) -> None:
        target = os.environ.get(COUNT_FILE_ENV, "")
        self.path = Path(target) if target else None
        self.served = 0

    def add(self) -> None:
        self.served += 1
        if self.path is not None:
            partial = self.path.with_suffix(".part")
            partial.write_text(str(self.served))
            os.replace(partial, self.path)
