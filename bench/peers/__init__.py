"""The peers' side of the benchmarks: their own environment and the scripts run in it.

Scripts here run under ``.cache/bench-venv/bin/python``, never the project's ``.venv``,
so they import only what that environment has (no ``dataplump``) and print one JSON
line: ``{"rows": ..., "seconds": ...}``.
"""
