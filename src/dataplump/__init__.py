"""DataPlump: SQL database -> Kafka -> validated, curated data, with dashboards and reports."""

__version__ = "0.1.0"
