"""Latency histograms on HdrHistogram, in microseconds, with exact sums kept beside them.

Percentiles come from the histogram (3 significant digits); mean and standard deviation
from exact sums, so they carry no bucket error. Encoded histograms travel in the run's
JSON and can be merged later, across windows, runs or processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hdrh.histogram import HdrHistogram

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


@dataclass(frozen=True)
class HistogramLimits:
    """Range and precision of every latency histogram of a run."""

    lowest_us: int = 1
    highest_us: int = 3_600_000_000  # one hour; slower requests are clamped and counted
    significant_figures: int = 3

    def new(self) -> HdrHistogram:
        return HdrHistogram(self.lowest_us, self.highest_us, self.significant_figures)


class LatencyHistogram:
    """A histogram plus the exact count, sum and sum of squares of what went in (in ns)."""

    __slots__ = ("hdr", "count", "sum_ns", "sum_sq_ns", "clamped", "limits")

    def __init__(self, limits: HistogramLimits | None = None) -> None:
        self.limits = limits or HistogramLimits()
        self.hdr = self.limits.new()
        self.count = 0
        self.sum_ns = 0
        self.sum_sq_ns = 0.0
        self.clamped = 0

    def record_ns(self, value_ns: int) -> None:
        micros = value_ns // 1000
        if micros > self.limits.highest_us:
            micros = self.limits.highest_us
            self.clamped += 1
        self.hdr.record_value(micros if micros > 0 else 1)
        self.count += 1
        self.sum_ns += value_ns
        self.sum_sq_ns += float(value_ns) * value_ns

    def record_many_ns(self, values_ns: list[int] | np.ndarray) -> None:
        """Record many latencies at once, vectorised (what the hot path collects per window).

        Computes HdrHistogram's bucket index for every value with numpy, the same arithmetic
        ``record_value`` does one value at a time, and adds the counts in place.
        """
        nanos = np.asarray(values_ns, dtype=np.int64)
        if nanos.size == 0:
            return
        micros = np.maximum(nanos // 1000, 1)
        over = micros > self.limits.highest_us
        clamped = int(over.sum())
        if clamped:
            micros[over] = self.limits.highest_us
        hdr = self.hdr
        bit_length = np.floor(np.log2((micros | hdr.sub_bucket_mask).astype(np.float64))).astype(np.int64) + 1
        bucket = bit_length - hdr.unit_magnitude - (hdr.sub_bucket_half_count_magnitude + 1)
        sub_bucket = micros >> (bucket + hdr.unit_magnitude)
        index = ((bucket + 1) << hdr.sub_bucket_half_count_magnitude) + (sub_bucket - hdr.sub_bucket_half_count)
        counts = np.ctypeslib.as_array(hdr.counts)
        np.add.at(counts, index, 1)
        hdr.total_count += int(nanos.size)
        hdr.min_value = min(hdr.min_value, int(micros.min()))
        hdr.max_value = max(hdr.max_value, int(micros.max()))
        self.count += int(nanos.size)
        self.sum_ns += int(nanos.sum())
        as_float = nanos.astype(np.float64)
        self.sum_sq_ns += float(np.dot(as_float, as_float))
        self.clamped += clamped

    def merge(self, other: LatencyHistogram) -> None:
        if other.count:
            self.hdr.add(other.hdr)
        self.count += other.count
        self.sum_ns += other.sum_ns
        self.sum_sq_ns += other.sum_sq_ns
        self.clamped += other.clamped

    @property
    def mean_us(self) -> float:
        return self.sum_ns / self.count / 1000 if self.count else 0.0

    @property
    def std_us(self) -> float:
        if self.count < 2:
            return 0.0
        mean = self.sum_ns / self.count
        variance = max(self.sum_sq_ns / self.count - mean * mean, 0.0)
        return math.sqrt(variance) / 1000

    def percentile_us(self, percentile: float) -> int:
        return int(self.hdr.get_value_at_percentile(percentile)) if self.count else 0

    def summary(self) -> dict[str, float]:
        """Percentiles, mean, std, min and max in microseconds."""
        if not self.count:
            return {"count": 0}
        result: dict[str, float] = {"count": self.count}
        for percentile in PERCENTILES:
            result[f"p{percentile:g}"] = self.percentile_us(percentile)
        result.update(
            mean=self.mean_us,
            std=self.std_us,
            min=int(self.hdr.get_min_value()),
            max=int(self.hdr.get_max_value()),
        )
        return result

    def encode(self) -> dict[str, object]:
        """JSON-ready form: the compressed HdrHistogram plus the exact sums."""
        return {
            "hdr": self.hdr.encode().decode("ascii") if self.count else "",
            "count": self.count,
            "sum_ns": self.sum_ns,
            "sum_sq_ns": self.sum_sq_ns,
            "clamped": self.clamped,
        }

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled as its encoded form (the HdrHistogram's ctypes counts do not pickle): load processes send these."""
        return (LatencyHistogram.decode, (self.encode(), self.limits))

    @classmethod
    def decode(cls, data: dict[str, object], limits: HistogramLimits | None = None) -> LatencyHistogram:
        histogram = cls(limits)
        if data.get("hdr"):
            histogram.hdr.decode_and_add(str(data["hdr"]))
        histogram.count = int(data["count"])  # type: ignore[arg-type]
        histogram.sum_ns = int(data["sum_ns"])  # type: ignore[arg-type]
        histogram.sum_sq_ns = float(data["sum_sq_ns"])  # type: ignore[arg-type]
        histogram.clamped = int(data.get("clamped", 0))  # type: ignore[arg-type]
        return histogram
