"""Test and measurement tools for the engine: a private PulseAudio server and chirp timing.

:mod:`deepiso.testing.pulse_server` runs a PulseAudio server with virtual
devices only (tests, benchmarks, ``deepiso demo``); :mod:`deepiso.testing.chirps`
measures the delay of a live stream from a recording of it. Nothing in the
engine's data path imports this package.
"""
