"""`make bench`: benchmarks of the paths that grow with the business (not tests; see run.py)."""
