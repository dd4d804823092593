"""perfprobe: a load generator and performance analyzer for KServe v2 / Triton servers."""

__version__ = "0.1.0"
