"""Benchmarks (run by hand, never as timed unit tests): `python -m bench.<name>`."""
