"""Runnable benchmarks: ``python -m benchmarks.step_cost`` and ``python -m benchmarks.quality``."""
