"""Fuzzing of every function's handler with bad events, against the sandbox (tests/integration/test_fuzz.py,
benchmarks/fuzz.py): ``targets.TARGETS`` is the one list, ``strategies`` makes the events, ``harness`` runs them
and checks the contract (rejected events change nothing; accepted ones are undone before the next)."""
