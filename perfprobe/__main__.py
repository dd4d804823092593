"""``python -m perfprobe``."""

from perfprobe.cli import main

main()
