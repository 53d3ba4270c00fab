"""Benchmarks: `python -m bench.<name>`; each writes JSON into bench/results/."""
