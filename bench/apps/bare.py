"""The HTTP limit: a bare endpoint that reads the body and answers 200.

Raw ASGI like the bridge's webhook endpoint, and dispatched exactly as the bridge dispatches
it (bridge.app.BridgeApp sends the webhook path to its endpoint before Starlette's stack), so
the difference to the bridge is exactly the bridge's own work.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bridge.ingress.app import WEBHOOK_PATH, BridgeApp

_OK = b'{"ok":true}'


class Webhook:
    """An instance, not a function, so Starlette hands it the raw ASGI triple (as the bridge's)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await Response(_OK, media_type="application/json")(scope, receive, send)


webhook = Webhook()
app = BridgeApp(webhook, routes=[Route(WEBHOOK_PATH, webhook)])
