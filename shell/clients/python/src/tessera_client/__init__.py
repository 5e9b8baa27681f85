"""A native app's client for the Tessera shell: the bus and FDC3 over the shell's endpoint.

A native app listed in the desk's manifest (``"type": "native"``) is started by the shell with
``TESSERA_ENDPOINT`` and a one-time ``TESSERA_LAUNCH_TOKEN`` in its environment;
:meth:`Client.from_env` connects with them, and the connection is that app for good. See
``shell/clients/PROTOCOL.md`` for the protocol underneath.
"""

from .client import (
    Call,
    Client,
    ClientError,
    Closed,
    Message,
    Refused,
    Refusal,
    Subscription,
)
from .fdc3 import Channel, Fdc3, Fdc3Error, IntentResolution, Listener

__all__ = [
    "Call",
    "Channel",
    "Client",
    "ClientError",
    "Closed",
    "Fdc3",
    "Fdc3Error",
    "IntentResolution",
    "Listener",
    "Message",
    "Refusal",
    "Refused",
    "Subscription",
]
