"""Gates: thresholds and baseline limits over a finished run, for CI (reads runs via perfprobe.report)."""
