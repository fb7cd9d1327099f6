"""unit21-kafka-bridge: signed Unit21 webhooks in, Avro records on Kafka out."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("unit21-kafka-bridge")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
