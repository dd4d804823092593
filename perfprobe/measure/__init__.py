"""Measurement: latency histograms, windows, stability, server statistics and metrics."""
