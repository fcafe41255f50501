"""The page's JavaScript and CSS, served by the app itself (no CDN: the dashboard works
with no internet).

Vega, Vega-Lite and vega-embed come from vl-convert-python's bundle
(:func:`vl_convert.javascript_bundle`), built once (about 10 s) and cached in memory and
under ``$DATAPLUMP_CACHE_DIR/present`` (default ``~/.cache/dataplump/present``), keyed by
the vl-convert version.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import threading
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
FILES = {"app.js": "text/javascript", "app.css": "text/css"}
"""The static files besides the Vega bundle, with their media types (the only names the
asset route serves)."""
_lock = threading.Lock()


def _cache_file() -> Path:
    from dataplump.services.kafka import cache_dir

    version = importlib.metadata.version("vl-convert-python")
    return cache_dir() / "present" / f"vega-bundle-{version}.js"


@cache
def vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one script (``window.vegaEmbed``, ``vega``,
    ``vegaLite``)."""
    with _lock:
        path = _cache_file()
        if path.is_file():
            return path.read_text()
        import vl_convert as vlc

        bundle = str(vlc.javascript_bundle())  # type: ignore[call-arg]  # the stub omits its default
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(bundle)
            partial.replace(path)
        except OSError as exc:  # a read-only home still serves the bundle from memory
            log.warning("could not cache the Vega bundle at %s: %s", path, exc)
        return bundle


def warm() -> None:
    """Build the bundle in a background thread, so the first page does not wait for it."""
    threading.Thread(target=vega_bundle, daemon=True, name="vega-bundle").start()


@cache
def static_file(name: str) -> bytes:
    """One of :data:`FILES` (a name not listed there is a ``KeyError``: no path is ever
    built from a request)."""
    if name not in FILES:
        raise KeyError(name)
    return (STATIC / name).read_bytes()


def etag(content: str | bytes) -> str:
    data = content.encode() if isinstance(content, str) else content
    return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
