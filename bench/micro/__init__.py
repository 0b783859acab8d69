"""Micro benchmarks: a native hot path against its pure-Python reference, each run
recording whether both gave the same results and the environment."""
