"""The quality benchmark's parts (`scripts/benchmark_quality.py` runs them)."""
