"""Benchmarks of ganfriends; run each as `.venv/bin/python -m benchmarks.NAME`."""
