"""Names of the Kafka topics a pipeline uses (design: "The flow")."""

from __future__ import annotations


def active(pipeline: str, table: str) -> str:
    """Valid extracted rows of ``table``."""
    return f"{pipeline}.{table}.active"


def dlq(pipeline: str, table: str) -> str:
    """Rows of ``table`` the contract rejected, with their reasons."""
    return f"{pipeline}.{table}.dlq"


def processed(pipeline: str, table: str) -> str:
    """Transformed, validated rows of ``table``, ready for the loader."""
    return f"{pipeline}.{table}.processed"


def failed(pipeline: str) -> str:
    """Records the transformation could not process or validate."""
    return f"{pipeline}.failed"


def alerts(pipeline: str) -> str:
    """Alert events of every stage."""
    return f"{pipeline}.alerts"


def extract_state(pipeline: str, table: str) -> str:
    """Compacted topic of ``table``'s extraction watermark.

    One topic per table: a transaction another table's extractor left open (killed
    mid-batch) holds back the last stable offset of the topic it wrote to, and would
    otherwise keep this table's reader waiting until the broker aborts it.
    """
    return f"{pipeline}.{table}.extract-state"


def transform_state(pipeline: str) -> str:
    """Compacted topic of the transformation's totals, keyed ``<table>@<slot>``: what each
    worker slot consumed, processed, failed and filtered over every run (the ledger's
    source, written in the slot's transactions)."""
    return f"{pipeline}.transform-state"


def replays(pipeline: str) -> str:
    """Compacted topic of replayed records, keyed by where each was kept
    (``topic:partition:offset``): a record is never replayed twice."""
    return f"{pipeline}.replays"


def schemas(pipeline: str) -> str:
    """Compacted topic of the Arrow schemas of the pipeline's records, keyed by schema id."""
    return f"{pipeline}.schemas"


def transform_group(pipeline: str) -> str:
    """Consumer group of the transformation workers (not a topic)."""
    return f"dataplump.{pipeline}.transform"


def runs(pipeline: str) -> str:
    """One record per stage run (extract, transform, load)."""
    return f"{pipeline}.runs"


def load_group(pipeline: str) -> str:
    """Consumer group of the loaders (not a topic)."""
    return f"dataplump.{pipeline}.load"
