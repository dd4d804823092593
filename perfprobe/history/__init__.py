"""Run history: every run's figures in one SQLite file, their series across runs, and where they changed."""
