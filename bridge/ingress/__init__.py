"""HTTP in: the app and its lifespan, the webhook endpoint, the answer table, the door
(connection limits) and the signature. The public surface is `__all__`; the rest is private."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.exports import lazy_exports

if TYPE_CHECKING:
    from bridge.ingress.answers import RULES, Refusal, answer, log_fields
    from bridge.ingress.app import WEBHOOK_PATH, BridgeApp, app_from_env, create_app
    from bridge.ingress.door import Door, DoorProtocol, raise_fd_limit, uvicorn_options
    from bridge.ingress.endpoint import WebhookEndpoint
    from bridge.ingress.runtime import Runtime
    from bridge.ingress.signature import HEADER_NAME, SignatureError, sign, signature_header, verify

__all__ = [
    "HEADER_NAME",
    "RULES",
    "WEBHOOK_PATH",
    "BridgeApp",
    "Door",
    "DoorProtocol",
    "Refusal",
    "Runtime",
    "SignatureError",
    "WebhookEndpoint",
    "answer",
    "app_from_env",
    "create_app",
    "log_fields",
    "raise_fd_limit",
    "sign",
    "signature_header",
    "uvicorn_options",
    "verify",
]

_MODULE_OF = {
    "BridgeApp": "bridge.ingress.app",
    "Door": "bridge.ingress.door",
    "DoorProtocol": "bridge.ingress.door",
    "HEADER_NAME": "bridge.ingress.signature",
    "RULES": "bridge.ingress.answers",
    "Refusal": "bridge.ingress.answers",
    "Runtime": "bridge.ingress.runtime",
    "SignatureError": "bridge.ingress.signature",
    "WEBHOOK_PATH": "bridge.ingress.app",
    "WebhookEndpoint": "bridge.ingress.endpoint",
    "answer": "bridge.ingress.answers",
    "app_from_env": "bridge.ingress.app",
    "create_app": "bridge.ingress.app",
    "log_fields": "bridge.ingress.answers",
    "raise_fd_limit": "bridge.ingress.door",
    "sign": "bridge.ingress.signature",
    "signature_header": "bridge.ingress.signature",
    "uvicorn_options": "bridge.ingress.door",
    "verify": "bridge.ingress.signature",
}


# Imported on first use: `send` needs the signature, not the producer and the app.
__getattr__ = lazy_exports(__name__, _MODULE_OF)
