"""Benchmarks of the engine, the model and its peers; each module is a command.

Run them from the repository root as modules, e.g. ``python -m benchmarks.quality --help``;
results go to ``benchmarks/results/``. The tests import them as ``benchmarks.quality`` and so on.
"""
