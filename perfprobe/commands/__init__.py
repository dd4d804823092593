"""The ``perfprobe`` subcommands; each module adds its parser and runs it."""
