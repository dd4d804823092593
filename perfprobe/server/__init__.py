"""The embedded real Triton server (from the nvidia-pytriton wheel) and its built-in models."""

from perfprobe.server.distribution import INSTALL_HINT, ServerNotInstalled
from perfprobe.server.launcher import EmbeddedServer, PortInUse, ServerStartError
from perfprobe.server.repository import BUILTIN_MODELS

__all__ = ["BUILTIN_MODELS", "INSTALL_HINT", "EmbeddedServer", "PortInUse", "ServerNotInstalled", "ServerStartError"]
