"""Benchmarks: `python -m bench [delivery|fanout|inbox]`, results as JSON in bench/results/."""
