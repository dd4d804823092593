"""One gate checked at one load level: what was measured, against what, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
INCONCLUSIVE = "inconclusive"  # the change's interval straddles the limit: more runs would decide it


@dataclass(frozen=True)
class Outcome:
    gate: str  # as the user wrote it, e.g. "p99<5ms" or "throughput vs baseline (max −5%)"
    kind: str  # "threshold" or "baseline"
    level: str  # "c=8", or "" when the gate is not about one level
    status: str  # passed / failed / inconclusive / skipped
    measured: str  # what the run showed, readable
    expected: str  # what the gate wanted, readable
    detail: str = ""  # why: the margin, the noise, an improvement

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def line(self) -> str:
        where = f" at {self.level}" if self.level else ""
        extra = f" — {self.detail}" if self.detail else ""
        return f"{self.status.upper():7} {self.gate}{where}: {self.measured} (wanted {self.expected}){extra}"
