"""What the tests and the benchmarks both run: servers on free ports (``harness.procs``).

Neither ``tests/`` nor ``bench/`` imports the other; both import this.
"""
