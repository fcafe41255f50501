"""Presentation: the dashboard web app (`dataplump serve`) and the charts reports reuse.

- :mod:`~dataplump.present.data`: queries over a snapshot of the curated and ops tables
  (DuckDB over Arrow frames) and the row-accounting ledger;
- :mod:`~dataplump.present.charts`: every chart as a Vega-Lite spec, declared once,
  drawn by the page (vega-embed) or rendered to SVG/PNG (vl-convert);
- :mod:`~dataplump.present.app`: the FastAPI app, its pages and JSON API;
- :mod:`~dataplump.present.assets`: the page's scripts, served by the app (no CDN).
"""

from __future__ import annotations
