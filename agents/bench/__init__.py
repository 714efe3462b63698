"""Benchmarks: figures side by side in one run (BENCHMARKS.md). Tooling."""
