"""DataPlump's exception tree.

Every error DataPlump raises on purpose derives from :class:`DataPlumpError`.
Third-party errors (confluent-kafka, SQLAlchemy, drivers) are wrapped where they
enter, so callers never catch a library's exception type::

    DataPlumpError
    ├── ConfigError              the pipeline file or an override is wrong
    ├── ServiceError             a service DataPlump manages or talks to
    │   ├── KafkaServiceError    the managed broker cannot be fetched/started/stopped
    │   └── DatabaseServiceError a local test database cannot be started
    ├── BusError                 producing to or consuming from Kafka failed
    ├── sources.SourceError      a source table cannot be read (its own module)
    ├── contracts.ContractError  a contract is wrong (a ConfigError)
    └── notify.NotifyError       a channel could not deliver a notification

Independently of where it sits in the tree, an error is either *transient*
(retrying the same operation later may succeed: a broker restarting, a
connection reset) or *terminal* (retrying cannot help: bad config, a record
that breaks the contract). The marker is a type, so ``except TransientError``
is how retry code selects what to retry.

Messages are one line a person understands and end with what to do next.
"""

from __future__ import annotations


class DataPlumpError(Exception):
    """Root of every error DataPlump raises on purpose."""


class TransientError(DataPlumpError):
    """Marker: the same operation may succeed if retried later."""


class TerminalError(DataPlumpError):
    """Marker: retrying cannot help; fix the input, the config or the environment."""


class ConfigError(TerminalError):
    """The pipeline file, an ``${ENV}`` reference or an environment override is wrong."""


class ServiceError(DataPlumpError):
    """A service DataPlump manages or depends on is missing, down or misbehaving."""


class KafkaServiceError(ServiceError, TerminalError):
    """The managed Kafka broker cannot be installed, started, reached or stopped."""


class DatabaseServiceError(ServiceError, TerminalError):
    """A local database server (PostgreSQL, MariaDB) cannot be started or reached."""


class BusError(DataPlumpError):
    """Producing to or consuming from Kafka failed.

    Keeps librdkafka's error ``code`` name and whether the error is retriable,
    so the caller can decide between retry and stop without parsing text.
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientBusError(BusError, TransientError):
    """A Kafka error librdkafka marks retriable (timeouts, leader changes, broker down)."""


class TerminalBusError(BusError, TerminalError):
    """A Kafka error that retrying cannot fix (authorization, fenced producer, bad config)."""
