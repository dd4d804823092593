"""Runs as library objects: a sweep or a compare from Python, the command line being one caller."""
