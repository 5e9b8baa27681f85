"""The connection: the handshake, a reader task that hands each message to whoever waits for it,
and the bus API (publish, subscribe, send, request, serve)."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, Optional, Union

PROTOCOL = 1
MAX_FRAME = 4 << 20
_LEN = struct.Struct(">I")

Handler = Callable[..., Union[Any, Awaitable[Any]]]


class ClientError(Exception):
    """Something went wrong talking to the shell."""


class Refused(ClientError):
    """The shell refused the connection (its reason is the message)."""


class Closed(ClientError):
    """The connection is closed (why is the message)."""


@dataclass(frozen=True)
class Message:
    """A message delivered to a subscription."""

    topic: str
    data: Any
    seq: int
    timestamp_ms: int
    sender: int
    #: The W3C trace it travels in (``00-<trace id>-<span id>-<flags>``), if it was sent in one.
    traceparent: Optional[str] = None


@dataclass(frozen=True)
class Refusal:
    """Something the shell refused (a publish, a subscription...), and why."""

    context: str
    error: str


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _signing_key(private_key_hex: str) -> Any:
    """The app's secret key (64 hex digits), which signs the shell's challenge."""
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    except ImportError as e:
        raise ClientError("a credential needs the cryptography package: pip install 'tessera-client[credentials]'") from e
    try:
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(private_key_hex.strip()))
    except ValueError as e:
        raise ClientError("the app's key is not 64 hex digits") from e


async def _bridge(ws: Any, sock: socket.socket) -> None:
    """Carries frames between the client's end of a socket pair (``sock``'s peer) and a
    WebSocket: each frame one text message, each text message one frame; a binary message, or
    either side closing, ends both."""
    reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_FRAME + 8)

    async def up() -> None:
        while True:
            head = await reader.readexactly(4)
            (length,) = struct.unpack(">I", head)
            body = await reader.readexactly(length)
            await ws.send(body.decode("utf-8"))

    async def down() -> None:
        async for message in ws:
            if isinstance(message, bytes):
                return
            body = message.encode("utf-8")
            writer.write(struct.pack(">I", len(body)) + body)
            await writer.drain()

    tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        await ws.close()


def _frame(message: Dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return _LEN.pack(len(body)) + body


class Subscription:
    """Messages on a pattern, in order: ``async for message in subscription``."""

    def __init__(self, client: "Client", sub: int, pattern: str) -> None:
        self._client = client
        self.id = sub
        self.pattern = pattern
        self._queue: "asyncio.Queue[Optional[Message]]" = asyncio.Queue()

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Message:
        m = await self._queue.get()
        if m is None:
            raise StopAsyncIteration
        return m

    async def recv(self) -> Optional[Message]:
        """The next message; None once the subscription was refused or the connection closed."""
        return await self._queue.get()

    async def unsubscribe(self) -> None:
        """Stops the subscription."""
        if self._client._subs.pop(self.id, None) is not None:
            self._queue.put_nowait(None)
            await self._client._send({"type": "bus.unsubscribe", "payload": {"sub": self.id}})


@dataclass
class Call:
    """A call to a service this app provides."""

    service: str
    action: str
    data: Any
    caller: Optional[str]
    call: int


class Client:
    """A connection to the shell, bound to one app instance."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, welcome: Dict[str, Any]) -> None:
        self._reader = reader
        self._writer = writer
        #: What carries a WebSocket connection's frames, if this is one.
        self._bridge: Optional["asyncio.Future[None]"] = None
        self.app: str = welcome.get("app", "")
        self.instance: int = int(welcome.get("instance", 0))
        #: The state this instance last saved (:meth:`save_state`), kept by the shell across
        #: restarts and in workspaces; None if none.
        self.state: Any = welcome.get("state")
        self._subs: Dict[int, Subscription] = {}
        self._calls: Dict[int, "asyncio.Future[Any]"] = {}
        self._services: Dict[str, Dict[str, Handler]] = {}
        self._on_message: Optional[Handler] = None
        self._on_error: Optional[Callable[[Refusal], Any]] = None
        self._ids = itertools.count(1)
        self._closed: "asyncio.Future[str]" = asyncio.get_running_loop().create_future()
        self._write_lock = asyncio.Lock()
        self._tasks: set = set()
        from .fdc3 import Fdc3

        self.fdc3 = Fdc3(self)
        self._reading = asyncio.ensure_future(self._read())

    # ---- connecting ---------------------------------------------------------------------

    @classmethod
    async def from_env(cls) -> "Client":
        """Connects with what the shell put in this process's environment."""
        path = os.environ.get("TESSERA_ENDPOINT")
        token = os.environ.get("TESSERA_LAUNCH_TOKEN")
        if not path or not token:
            raise ClientError("TESSERA_ENDPOINT and TESSERA_LAUNCH_TOKEN are not set: a native app is started by the Tessera shell")
        return await cls.connect(path, token)

    @classmethod
    async def connect(cls, path: str, token: str, *, timeout: float = 10.0) -> "Client":
        """Connects to the endpoint at ``path`` with a launch token."""
        return await cls._handshake(path, {"token": token}, None, timeout)

    @classmethod
    async def connect_with_credential(
        cls, path: str, credential: Dict[str, Any], private_key_hex: str, *, timeout: float = 10.0
    ) -> "Client":
        """Connects an app started outside the shell: ``credential`` is the JSON IT issued for it
        (``tessera sign credential``), ``private_key_hex`` the app's secret key (64 hex digits),
        which signs the shell's challenge and never leaves this process. Needs the
        ``cryptography`` package (``pip install tessera-client[credentials]``)."""
        key = _signing_key(private_key_hex)
        return await cls._handshake(path, {"credential": credential}, key, timeout)

    @classmethod
    async def connect_websocket_with_credential(
        cls, url: str, credential: Dict[str, Any], private_key_hex: str, *, timeout: float = 10.0
    ) -> "Client":
        """:meth:`connect_with_credential` over the endpoint's WebSocket (``ws://127.0.0.1:PORT``,
        where the admin policy's ``endpoint.websocket`` opens one), for an app that cannot reach
        the shell's Unix socket. Needs the ``websockets`` and ``cryptography`` packages
        (``pip install 'tessera-client[websocket]'``)."""
        try:
            from websockets.asyncio.client import connect as ws_connect
        except ImportError as e:
            raise ClientError("a WebSocket needs the websockets package: pip install 'tessera-client[websocket]'") from e
        key = _signing_key(private_key_hex)
        try:
            ws = await asyncio.wait_for(ws_connect(url, max_size=MAX_FRAME, compression=None), timeout)
        except Exception as e:  # OSError, a timeout, or the websockets package's own errors
            raise ClientError(f"the endpoint {url}: {e}") from e
        # The client speaks frames over a stream: a socket pair, its other end bridged to the
        # WebSocket (one text message a frame, both ways).
        ours, theirs = socket.socketpair()
        bridge = asyncio.ensure_future(_bridge(ws, theirs))
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=MAX_FRAME + 8)
        client = await cls._handshake_on(reader, writer, url, {"credential": credential}, key, timeout)
        client._bridge = bridge
        return client

    @classmethod
    async def _handshake(cls, path: str, proof: Dict[str, Any], key: Any, timeout: float) -> "Client":
        try:
            reader, writer = await asyncio.open_unix_connection(path, limit=MAX_FRAME + 8)
        except OSError as e:
            raise ClientError(f"the endpoint {path}: {e}") from e
        return await cls._handshake_on(reader, writer, path, proof, key, timeout)

    @classmethod
    async def _handshake_on(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        path: str,
        proof: Dict[str, Any],
        key: Any,
        timeout: float,
    ) -> "Client":
        hello = {"type": "hello", "payload": dict(proof, protocol=PROTOCOL, client="tessera-client-python/0.1.0")}
        writer.write(_frame(hello))
        await writer.drain()

        async def answer() -> Optional[Dict[str, Any]]:
            try:
                return await asyncio.wait_for(_read_frame(reader), timeout)
            except asyncio.TimeoutError as e:
                writer.close()
                raise ClientError(f"no welcome within {timeout} s") from e

        first = await answer()
        if first is not None and first.get("type") == "challenge" and key is not None:
            nonce = first.get("payload", {}).get("nonce", "")
            app = proof.get("credential", {}).get("app", "")
            signature = key.sign(f"tessera-endpoint-proof\n{app}\n{nonce}".encode()).hex()
            writer.write(_frame({"type": "proof", "payload": {"signature": signature}}))
            await writer.drain()
            first = await answer()
        if first is None:
            raise Refused("the shell closed the connection")
        if first.get("type") == "error":
            writer.close()
            raise Refused(first.get("payload", {}).get("error", "no reason given"))
        if first.get("type") != "welcome":
            writer.close()
            raise ClientError(f"expected a welcome, got {first!r}")
        return cls(reader, writer, first.get("payload", {}))

    # ---- the bus ------------------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        data: Any = None,
        *,
        durable: bool = False,
        ttl_ms: Optional[int] = None,
        traceparent: Optional[str] = None,
    ) -> None:
        """Publishes ``data`` (any JSON value) on ``topic``, in the W3C trace ``traceparent`` if
        given. A refusal comes to :meth:`on_error`."""
        payload: Dict[str, Any] = {"topic": topic, "data": data}
        if durable:
            payload["durable"] = True
        if ttl_ms is not None:
            payload["ttlMs"] = ttl_ms
        if traceparent is not None:
            payload["traceparent"] = traceparent
        await self._send({"type": "bus.publish", "payload": payload})

    async def subscribe(
        self,
        pattern: str,
        handler: Optional[Callable[[Message], Any]] = None,
        *,
        capacity: int = 8192,
        policy: str = "drop_oldest",
        replay: int = 0,
    ) -> Subscription:
        """Subscribes to ``pattern`` (``*`` one segment, ``#`` any). With a ``handler``, each message
        is handed to it (it may be async); else iterate the subscription."""
        sub = Subscription(self, next(self._ids), pattern)
        self._subs[sub.id] = sub
        if handler is not None:
            self._spawn(self._pump(sub, handler))
        await self._send(
            {
                "type": "bus.subscribe",
                "payload": {"sub": sub.id, "pattern": pattern, "capacity": capacity, "policy": policy, "replay": replay},
            }
        )
        return sub

    async def _pump(self, sub: Subscription, handler: Callable[[Message], Any]) -> None:
        async for m in sub:
            try:
                await _maybe_await(handler(m))
            except Exception as e:  # noqa: BLE001 - a handler's failure is the app's, not the connection's
                _warn(f"subscription handler for {sub.pattern!r} failed: {e!r}")

    async def send(self, app: str, topic: str, data: Any = None) -> None:
        """Sends ``data`` to one app (its running instance, or its queue while it restarts)."""
        await self._send({"type": "bus.send", "payload": {"app": app, "topic": topic, "data": data}})

    def on_message(self, handler: Callable[[str, Any, Optional[str]], Any]) -> None:
        """``handler(topic, data, from_app)`` for each message sent to this app."""
        self._on_message = handler

    def on_error(self, handler: Callable[[Refusal], Any]) -> None:
        """``handler(refusal)`` for each thing the shell refuses."""
        self._on_error = handler

    async def request(self, service: str, action: str, data: Any = None, *, timeout: float = 5.0) -> Any:
        """Calls ``action`` of ``service``; returns its answer, raises :class:`ClientError` with its error."""
        call = next(self._ids)
        fut: "asyncio.Future[Any]" = asyncio.get_running_loop().create_future()
        self._calls[call] = fut
        await self._send(
            {
                "type": "bus.request",
                "payload": {"call": call, "service": service, "action": action, "data": data, "timeoutMs": int(timeout * 1000)},
            }
        )
        try:
            return await asyncio.wait_for(fut, timeout + 5)
        except asyncio.TimeoutError as e:
            raise ClientError(f"no answer from {service} within {timeout} s") from e
        finally:
            self._calls.pop(call, None)

    async def serve(self, service: str, handlers: Dict[str, Handler]) -> None:
        """Provides ``service``: ``handlers[action](data, caller_app)`` answers each call (it may be
        async; what it raises is the caller's error)."""
        self._services[service] = dict(handlers)
        await self._send({"type": "bus.serve", "payload": {"service": service, "actions": list(handlers)}})

    async def unserve(self, service: str) -> None:
        """Stops providing ``service``."""
        self._services.pop(service, None)
        await self._send({"type": "bus.unserve", "payload": {"service": service}})

    async def save_state(self, state: Any) -> None:
        """Saves the app's state (JSON, at most 1 MiB) for workspaces."""
        await self._send({"type": "workspace.setState", "payload": {"state": state}})

    async def close(self) -> None:
        """Tells the shell this app instance is done (it is not restarted), and closes."""
        try:
            await self._send({"type": "tessera.close"})
        finally:
            self._writer.close()

    async def wait_closed(self) -> str:
        """Waits until the connection is closed; returns why."""
        return await asyncio.shield(self._closed)

    @property
    def closed(self) -> bool:
        return self._closed.done()

    # ---- plumbing -----------------------------------------------------------------------

    async def _send(self, message: Dict[str, Any]) -> None:
        if self._closed.done():
            raise Closed(self._closed.result())
        async with self._write_lock:
            self._writer.write(_frame(message))
            await self._writer.drain()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self) -> None:
        why = "the shell closed the connection"
        try:
            while True:
                m = await _read_frame(self._reader)
                if m is None:
                    break
                if m.get("type") == "error":
                    why = m.get("payload", {}).get("error", why)
                    break
                self._dispatch(m)
        except (OSError, ValueError, asyncio.IncompleteReadError) as e:
            why = f"the connection failed: {e}"
        except asyncio.CancelledError:
            why = "the client was closed"
        finally:
            if not self._closed.done():
                self._closed.set_result(why)
            for sub in list(self._subs.values()):
                sub._queue.put_nowait(None)
            self._subs.clear()
            for fut in self._calls.values():
                if not fut.done():
                    fut.set_exception(Closed(why))
            self.fdc3._close(why)
            self._writer.close()

    def _dispatch(self, m: Dict[str, Any]) -> None:
        kind = m.get("type", "")
        p = m.get("payload") or {}
        if kind == "bus.deliver":
            sub = self._subs.get(p.get("sub"))
            if sub is not None:
                sub._queue.put_nowait(
                    Message(
                        p.get("topic", ""),
                        p.get("data"),
                        p.get("seq", 0),
                        p.get("timestamp", 0),
                        p.get("sender", 0),
                        p.get("traceparent"),
                    )
                )
        elif kind == "bus.direct":
            if self._on_message is not None:
                self._spawn(_maybe_await(self._on_message(p.get("topic"), p.get("data"), p.get("from"))))
        elif kind == "bus.call":
            self._spawn(self._answer(Call(p.get("service", ""), p.get("action", ""), p.get("data"), p.get("from"), p.get("call", 0))))
        elif kind == "bus.response":
            fut = self._calls.get(p.get("call"))
            if fut is not None and not fut.done():
                if p.get("ok"):
                    fut.set_result(p.get("value"))
                else:
                    fut.set_exception(ClientError(p.get("error", "the call failed")))
        elif kind == "bus.refused":
            refusal = Refusal(p.get("context", ""), p.get("error", ""))
            ctx = refusal.context
            if ctx.startswith("subscribe ") and ctx[10:].isdigit():
                sub = self._subs.pop(int(ctx[10:]), None)
                if sub is not None:
                    sub._queue.put_nowait(None)
            if self._on_error is not None:
                self._spawn(_maybe_await(self._on_error(refusal)))
            else:
                _warn(f"refused: {refusal.context}: {refusal.error}")
        elif kind == "ping":
            self._spawn(self._send({"type": "pong", "payload": {"nonce": p.get("nonce", 0)}}))
        elif kind == "pong":
            pass
        else:
            self.fdc3._dispatch(m)

    async def _answer(self, call: Call) -> None:
        handler = self._services.get(call.service, {}).get(call.action)
        payload: Dict[str, Any] = {"service": call.service, "call": call.call}
        if handler is None:
            payload.update(ok=False, error=f"{call.service} has no action {call.action!r}")
        else:
            try:
                payload.update(ok=True, value=await _maybe_await(handler(call.data, call.caller)))
            except Exception as e:  # noqa: BLE001 - the provider's failure is the caller's answer
                payload.update(ok=False, error=str(e) or type(e).__name__)
        try:
            await self._send({"type": "bus.respond", "payload": payload})
        except Closed:
            pass


async def _read_frame(reader: asyncio.StreamReader) -> Optional[Dict[str, Any]]:
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise
    (length,) = _LEN.unpack(head)
    if not 0 < length <= MAX_FRAME:
        raise ValueError(f"a frame of {length} bytes from the shell")
    return json.loads(await reader.readexactly(length))


def _warn(text: str) -> None:
    import sys

    print(f"tessera_client: {text}", file=sys.stderr)
