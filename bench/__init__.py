"""Benchmarks of keyrevoke on one machine: ``python -m bench run [--quick]`` writes docs/benchmarks.md."""
