"""The data contract, pure (bytes in, records out; no I/O but the registry client, no HTTP):
routing, JSON parsing, normalization compiled from schemas/, the two codecs, compatibility and
the generated references.

The public surface is `__all__`; names are imported on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.exports import lazy_exports

if TYPE_CHECKING:
    from bridge.contract.codec import Codec, DecodeError, SingleObjectCodec
    from bridge.contract.compatibility import check_history, check_pair
    from bridge.contract.detecting import DetectingCodec
    from bridge.contract.normalize import NormalizationError, compile_normalizer
    from bridge.contract.parsing import PayloadError, classify, dumps, event_id, loads, parse, record_key
    from bridge.contract.records import Delivery, MessageBuilder, OutgoingMessage
    from bridge.contract.registry import RegistryCodec, registry_codec
    from bridge.contract.schemas import SchemaLoadError, SchemaSet, TopicSchema

_MODULE_OF = {
    "Codec": "bridge.contract.codec",
    "DecodeError": "bridge.contract.codec",
    "Delivery": "bridge.contract.records",
    "DetectingCodec": "bridge.contract.detecting",
    "MessageBuilder": "bridge.contract.records",
    "NormalizationError": "bridge.contract.normalize",
    "OutgoingMessage": "bridge.contract.records",
    "PayloadError": "bridge.contract.parsing",
    "RegistryCodec": "bridge.contract.registry",
    "SchemaLoadError": "bridge.contract.schemas",
    "SchemaSet": "bridge.contract.schemas",
    "SingleObjectCodec": "bridge.contract.codec",
    "TopicSchema": "bridge.contract.schemas",
    "check_history": "bridge.contract.compatibility",
    "check_pair": "bridge.contract.compatibility",
    "classify": "bridge.contract.parsing",
    "compile_normalizer": "bridge.contract.normalize",
    "dumps": "bridge.contract.parsing",
    "event_id": "bridge.contract.parsing",
    "loads": "bridge.contract.parsing",
    "parse": "bridge.contract.parsing",
    "record_key": "bridge.contract.parsing",
    "registry_codec": "bridge.contract.registry",
}
__all__ = [
    "Codec",
    "DecodeError",
    "Delivery",
    "DetectingCodec",
    "MessageBuilder",
    "NormalizationError",
    "OutgoingMessage",
    "PayloadError",
    "RegistryCodec",
    "SchemaLoadError",
    "SchemaSet",
    "SingleObjectCodec",
    "TopicSchema",
    "check_history",
    "check_pair",
    "classify",
    "compile_normalizer",
    "dumps",
    "event_id",
    "loads",
    "parse",
    "record_key",
    "registry_codec",
]


__getattr__ = lazy_exports(__name__, _MODULE_OF)
