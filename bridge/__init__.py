"""unit21-kafka-bridge: signed Unit21 webhooks in, Avro records on Kafka out.

The data path, one package a step, over the settings and the error vocabulary:
`ingress` (HTTP) -> `contract` (parse, normalize, encode) -> `delivery` (Kafka or the spool);
`ops` (metrics, logs, tracing) and `cli` (the commands). Each package's `__all__` is its public
surface (tests/unit/test_public_api.py pins them); the layering is checked by `make lint`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("unit21-kafka-bridge")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
