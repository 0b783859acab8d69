"""Benchmarks of the project, listed and run by ``python -m bench``.

``micro/``: a native hot path against its pure-Python reference, correctness recorded;
``macro/``: load against peers.
"""
