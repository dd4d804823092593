"""Shared-memory regions for tensors: system (POSIX) now; CUDA to follow."""
