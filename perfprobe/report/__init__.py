"""Reports: CSV and JSON of a sweep's results."""
