"""Every setting the bridge reads, in one typed object built from environment variables.

The README's configuration table and the Helm chart's values mirror this file: a new
setting is added here first, then documented there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from bridge.errors import BridgeError

KAFKA_ENV_PREFIX = "KAFKA_"

# librdkafka properties the bridge owns: overriding them would break the promise that a
# 2xx means the record reached Kafka, so a pass-through variable naming one is refused.
PROTECTED_KAFKA_PROPERTIES = frozenset(
    {
        "bootstrap.servers",
        "enable.idempotence",
        "acks",
        "request.required.acks",
        "message.timeout.ms",
        "delivery.timeout.ms",
        "max.in.flight.requests.per.connection",
        "max.in.flight",
    }
)


# The memory arithmetic shared by `serve`'s start-up check and the Helm chart's limits
# (helm/unit21-kafka-bridge/templates/_helpers.tpl mirrors these two numbers; a chart test
# ties the rendered limit to Settings.worst_case_memory_bytes()).
WORKER_BASELINE_BYTES = 160 * 1024 * 1024  # one idle worker: interpreter, schemas, librdkafka
# A body in flight is held as chunks, joined bytes, parsed document, normalised record and Avro
# bytes; bodies of many small JSON objects measured ~7 times their size (bench/worker_memory.py).
BODY_COPIES = 8


DEFAULT_SPOOL_DIR = Path("/var/lib/unit21-bridge/spool")


def topic_name(prefix: str, suffix: str) -> str:
    """The one rule for topic names: BRIDGE_TOPIC_PREFIX + the route's suffix (routes.py)."""
    return f"{prefix}{suffix}"


class ConfigError(BridgeError, ValueError):
    """A setting is missing or wrong; the message names the variable and the fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    kafka_bootstrap_servers: str = Field(
        default="",
        validation_alias="KAFKA_BOOTSTRAP_SERVERS",
        description="Kafka cluster, host:port[,host:port]. Required by `serve`; `dev` starts an embedded "
        "broker when it is unset.",
    )
    webhook_secrets: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        validation_alias="UNIT21_WEBHOOK_SECRETS",
        description="Comma-separated webhook secrets from Unit21's webhook settings; a request signed with "
        "any of them is accepted (rotation needs the old and the new at once). Required by `serve`.",
    )
    allow_unsigned: bool = Field(
        default=False,
        validation_alias="BRIDGE_ALLOW_UNSIGNED",
        description="Accept requests without a Unit21-Signature header. Only for experiments; `serve` "
        "refuses to start with no secrets unless this is set.",
    )
    topic_prefix: str = Field(
        default="unit21.",
        validation_alias="BRIDGE_TOPIC_PREFIX",
        description="Topics are `<prefix>alert`, `case`, `entity`, `rule`, `event`, `file_export`, "
        "`unrecognized` and `dlq`.",
    )
    signature_tolerance_seconds: int = Field(
        default=300,
        ge=1,
        validation_alias="BRIDGE_SIGNATURE_TOLERANCE_SECONDS",
        description="A signature whose t= is further than this from the bridge's clock is rejected "
        "(replay protection).",
    )
    max_body_bytes: int = Field(
        default=900 * 1024,
        ge=1024,
        validation_alias="BRIDGE_MAX_BODY_BYTES",
        description="Larger bodies get 413 without being read. The default leaves room under Kafka's "
        "message.max.bytes (librdkafka: 1,000,000) for a dead-letter record, which carries the whole body.",
    )
    delivery_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        validation_alias="BRIDGE_DELIVERY_TIMEOUT_SECONDS",
        description="How long an HTTP answer waits for the broker's acknowledgement.",
    )
    host: str = Field(
        default="0.0.0.0", validation_alias="BRIDGE_HOST", description="Bind address of `serve` (--host)."
    )
    port: int = Field(
        default=8080, ge=1, le=65535, validation_alias="BRIDGE_PORT", description="Port of `serve` (--port)."
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        validation_alias="BRIDGE_WORKERS",
        description="Worker processes of `serve` (--workers); each has its own producer, spool file and "
        "memory budget.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO",
        validation_alias=AliasChoices("BRIDGE_LOG_LEVEL"),
        description="DEBUG, INFO, WARNING or ERROR.",
    )
    log_format: Literal["json", "text"] | None = Field(
        default=None,
        validation_alias="BRIDGE_LOG_FORMAT",
        description="json (one object per line) or text; default json for `serve`, text for `dev`.",
    )
    prometheus_multiproc_dir: str | None = Field(
        default=None,
        validation_alias="PROMETHEUS_MULTIPROC_DIR",
        description="prometheus-client's multiprocess directory; `serve` creates one when workers > 1.",
    )
    # Tracing is on when an exporter is configured the standard OpenTelemetry way; the SDK
    # reads every other OTEL_* variable (service name, headers, sampler) itself.
    otel_sdk_disabled: bool = Field(
        default=False, validation_alias="OTEL_SDK_DISABLED", description="true turns tracing off."
    )
    otel_traces_exporter: str | None = Field(
        default=None,
        validation_alias="OTEL_TRACES_EXPORTER",
        description="otlp turns tracing on (with the OTLP endpoint below), none off.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT",
        description="OTLP/HTTP collector; setting it turns tracing on: a span per webhook, the publish as "
        "its child, traceparent in the Kafka headers. Other OTEL_* variables are read by the SDK.",
    )
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None,
        validation_alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        description="OTLP/HTTP endpoint for traces only (overrides the one above for traces).",
    )
    readiness_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        validation_alias="BRIDGE_READINESS_CACHE_SECONDS",
        description="How long /readyz reuses its last broker check.",
    )
    max_concurrency: int = Field(
        default=64,
        ge=1,
        validation_alias="BRIDGE_MAX_CONCURRENCY",
        description="Webhook requests handled at once per process, counted once their body has arrived; "
        "beyond it: 503 with Retry-After. Bodies still arriving share a budget of this x "
        "BRIDGE_MAX_BODY_BYTES.",
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=1024 * 1024,
        validation_alias="BRIDGE_MAX_HEADER_BYTES",
        description="Total bytes of a request's line and headers; beyond it: 431 and the connection closed.",
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=120,
        validation_alias="BRIDGE_HEADER_TIMEOUT_SECONDS",
        description="A connection that has not sent a complete request head this long after it opened "
        "(or after its previous request) is closed.",
    )
    body_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=120,
        validation_alias="BRIDGE_BODY_TIMEOUT_SECONDS",
        description="The whole body must arrive within this many seconds of the headers; beyond it: 408.",
    )
    keepalive_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        validation_alias="BRIDGE_KEEPALIVE_TIMEOUT_SECONDS",
        description="A connection that sends nothing this long (from when it opens, or after an answer) "
        "is closed.",
    )
    max_connections: int = Field(
        default=2000,
        ge=8,
        validation_alias="BRIDGE_MAX_CONNECTIONS",
        description="Open connections per process; one more is answered 503 and closed at once. Must stay "
        "below the process's open-file limit (`serve` checks it).",
    )
    memory_budget_bytes: int = Field(
        default=768 * 1024 * 1024,
        ge=64 * 1024 * 1024,
        validation_alias="BRIDGE_MEMORY_BUDGET_BYTES",
        description="Memory one worker may use; `serve` refuses to start when its worst case "
        "(see worst_case_memory_bytes) exceeds it. The chart sets it from the container's limit.",
    )
    shutdown_grace_seconds: int = Field(
        default=20,
        ge=1,
        le=600,
        validation_alias="BRIDGE_SHUTDOWN_GRACE_SECONDS",
        description="After SIGTERM: time for in-flight requests, delivering the spool to Kafka and the final "
        "flush; the process exits within it + 5 s. Keep it below the pod's terminationGracePeriodSeconds.",
    )
    spool_enabled: bool = Field(
        default=True,
        validation_alias="BRIDGE_SPOOL_ENABLED",
        description="Keep records Kafka did not acknowledge in time on local disk and answer 202. "
        "Turning it off means a Kafka outage longer than Unit21's ~3 s retry budget loses webhooks.",
    )
    spool_dir: Path = Field(
        default=DEFAULT_SPOOL_DIR,
        validation_alias="BRIDGE_SPOOL_DIR",
        description="Directory of the disk spool (one SQLite file per process); a persistent volume "
        "in production.",
    )
    spool_max_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=64 * 1024,
        validation_alias="BRIDGE_SPOOL_MAX_BYTES",
        description="Record bytes the spool may hold per process; beyond it: 503 with Retry-After.",
    )
    dedup_window_seconds: float = Field(
        default=600.0,
        ge=0,
        validation_alias="BRIDGE_DEDUP_WINDOW_SECONDS",
        description="How long a delivered event_id is remembered, so a re-sent webhook is answered without "
        "publishing it again (0 turns this off).",
    )
    dedup_max_entries: int = Field(
        default=100_000,
        ge=1,
        validation_alias="BRIDGE_DEDUP_MAX_ENTRIES",
        description="At most this many event_ids are remembered per process (oldest forgotten first).",
    )
    schema_registry_url: str = Field(
        default="",
        validation_alias="SCHEMA_REGISTRY_URL",
        description="Confluent Schema Registry URL; when set, values use the Confluent wire format "
        "(magic byte 0, 4-byte schema id). Empty: Avro single-object encoding.",
    )
    schema_registry_basic_auth_user_info: SecretStr | None = Field(
        default=None,
        validation_alias="SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
        description="user:password for the registry's basic auth (e.g. a Confluent Cloud API key:secret).",
    )
    schema_registry_ssl_ca_location: str = Field(
        default="",
        validation_alias="SCHEMA_REGISTRY_SSL_CA_LOCATION",
        description="CA bundle file that signs the registry's TLS certificate (default: system trust).",
    )
    schema_registry_auto_register: bool = Field(
        default=False,
        validation_alias="BRIDGE_SCHEMA_REGISTRY_AUTO_REGISTER",
        description="Register missing subjects at start-up. For development; production registers with "
        "`unit21-bridge schemas register` and keeps this off.",
    )
    subject_name_strategy: Literal["topic", "topic_record"] = Field(
        default="topic",
        validation_alias="BRIDGE_SUBJECT_NAME_STRATEGY",
        description="Registry subject per topic: topic -> <topic>-value (TopicNameStrategy), "
        "topic_record -> <topic>-<record full name> (TopicRecordNameStrategy).",
    )
    kafka_properties: dict[str, str] = Field(
        default_factory=dict,
        description="librdkafka properties from KAFKA_* variables (KAFKA_SASL_MECHANISM -> sasl.mechanism).",
    )

    @field_validator("webhook_secrets", mode="before")
    @classmethod
    def _split_secrets(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not set(value) <= allowed:
            raise ValueError("may contain only letters, digits, '.', '_' and '-' (Kafka topic rules)")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what from_env() is given: a test's Settings.from_env({}) must not see the shell's
        # BRIDGE_* or KAFKA_* variables behind its back (as Starlette's Config(environ=...)).
        return (init_settings,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from `environ` only (default: the process's environment) plus overrides."""
        env = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {k: v for k, v in env.items() if _is_known_variable(k)}
        values["kafka_properties"] = kafka_properties_from_env(env)
        values.update(overrides)
        return cls.model_validate(values)

    @property
    def tracing_enabled(self) -> bool:
        if self.otel_sdk_disabled:
            return False
        exporter = (self.otel_traces_exporter or "").strip().lower()
        if exporter:
            return exporter != "none"
        return bool(self.otel_exporter_otlp_endpoint or self.otel_exporter_otlp_traces_endpoint)

    def request_memory_bytes(self) -> int:
        """Worst-case memory that requests can hold in one worker: every processing slot with a
        full body in its copies (chunks, joined body, parsed document, encoded record) plus a
        full request head on every open connection. The chart derives its limit from the same sum."""
        return (
            self.max_concurrency * BODY_COPIES * self.max_body_bytes
            + self.max_connections * self.max_header_bytes
        )

    def worst_case_memory_bytes(self) -> int:
        """One worker's worst case: its measured idle footprint plus request_memory_bytes()."""
        return WORKER_BASELINE_BYTES + self.request_memory_bytes()

    def kafka_client_config(self) -> dict[str, str]:
        """What every Kafka client of the bridge connects with (bootstrap, security, SASL, TLS):
        the admin, consumer and producer configurations all start from it."""
        return {**self.kafka_properties, "bootstrap.servers": self.kafka_bootstrap_servers}

    def topic(self, suffix: str) -> str:
        return topic_name(self.topic_prefix, suffix)

    def check_serve(self) -> None:
        """Refuse the production start-up when a setting would make the bridge unsafe."""
        if not self.kafka_bootstrap_servers:
            raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is not set: the bridge has no cluster to publish to.")
        if not self.webhook_secrets and not self.allow_unsigned:
            raise ConfigError(
                "UNIT21_WEBHOOK_SECRETS is not set, so no webhook could be authenticated. Set it to the "
                "comma-separated secrets shown in Unit21's webhook settings, or set "
                "BRIDGE_ALLOW_UNSIGNED=true to accept unsigned requests (never in production)."
            )


def check_spool_dir(directory: Path) -> None:
    """Create the spool directory if needed and prove this process can write there."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"BRIDGE_SPOOL_DIR={directory} is not a writable directory for this process (uid {os.getuid()}): "
            f"{exc.strerror or exc}. Mount a persistent volume there or point BRIDGE_SPOOL_DIR at one; "
            "BRIDGE_SPOOL_ENABLED=false runs without the spool (webhooks are then lost when Kafka is "
            "unavailable for longer than Unit21's retries)."
        ) from None


def _is_known_variable(name: str) -> bool:
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, str) and alias == name:
            return True
        if isinstance(alias, AliasChoices) and name in alias.choices:
            return True
    return False


def kafka_properties_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """KAFKA_SECURITY_PROTOCOL=SASL_SSL -> {"security.protocol": "SASL_SSL"}.

    Kubernetes injects KAFKA_SERVICE_HOST-style variables for a Service named "kafka";
    the chart disables service links, and librdkafka rejects unknown names at start-up
    (`serve` names the KAFKA_* variables in that error), so a stray one is never ignored.
    """
    props: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith(KAFKA_ENV_PREFIX) or name == "KAFKA_BOOTSTRAP_SERVERS":
            continue
        prop = name[len(KAFKA_ENV_PREFIX) :].lower().replace("_", ".")
        if prop in PROTECTED_KAFKA_PROPERTIES:
            raise ConfigError(
                f"{name} would override the producer's '{prop}', which the bridge sets itself to keep its "
                "delivery guarantee (use BRIDGE_DELIVERY_TIMEOUT_SECONDS for the deadline)."
            )
        props[prop] = value
    return props
