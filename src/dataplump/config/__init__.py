"""The pipeline config: ``dataplump.yaml`` read into frozen, validated pydantic models.

    >>> from dataplump.config import load_config
    >>> config = load_config("examples/dataplump.yaml", env={})
    >>> config.name, config.kafka.is_managed
    ('shop', True)

``load_config`` raises :class:`InvalidConfigError` (a :class:`~dataplump.errors.ConfigError`)
whose ``issues`` name every problem with its key path and file line, or the
``DATAPLUMP__...`` environment variable that caused it. Secrets never appear in a
``repr``, a dump or an error message. The file format is described in ``docs/config.md``.
"""

from dataplump.config.issues import ConfigIssue, InvalidConfigError
from dataplump.config.loader import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_FILE,
    OVERRIDE_PREFIX,
    load_config,
)
from dataplump.config.models import (
    MASK,
    Channel,
    EmailChannel,
    KafkaConfig,
    LogChannel,
    ManagedKafkaConfig,
    NotifyConfig,
    PipelineConfig,
    PipelineSection,
    PresentConfig,
    ReferenceConfig,
    SecretUrl,
    SinkConfig,
    SlackChannel,
    SourceConfig,
    SparkConfig,
    TableConfig,
    TopicConfig,
    TransformConfig,
    WebhookChannel,
)
from dataplump.errors import ConfigError

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_FILE",
    "MASK",
    "OVERRIDE_PREFIX",
    "Channel",
    "ConfigError",
    "ConfigIssue",
    "EmailChannel",
    "InvalidConfigError",
    "KafkaConfig",
    "LogChannel",
    "ManagedKafkaConfig",
    "NotifyConfig",
    "PipelineConfig",
    "PipelineSection",
    "PresentConfig",
    "ReferenceConfig",
    "SecretUrl",
    "SinkConfig",
    "SlackChannel",
    "SourceConfig",
    "SparkConfig",
    "TableConfig",
    "TopicConfig",
    "TransformConfig",
    "WebhookChannel",
    "load_config",
]
