"""Test doubles, in one place: a fake backend and model, power traces with exact integrals,
a powercap tree, NVML, a fake clock and the test-only model cards.

Only `tests/` and this package import from here. The `fake` backend stays registered
(recipes run in child processes name it) but is hidden from `optbench ls` and from
did-you-mean suggestions.
"""
