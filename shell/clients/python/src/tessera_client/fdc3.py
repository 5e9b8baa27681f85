"""FDC3 for a native app, mirroring the web API (``window.fdc3``): DACP requests to the shell's
agent, matched with their responses, and its events handed to the listeners."""

from __future__ import annotations

import asyncio
import datetime
import inspect
import uuid
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

if TYPE_CHECKING:
    from .client import Client

REQUEST_TIMEOUT = 10.0
RAISE_TIMEOUT = 120.0


class Fdc3Error(Exception):
    """An FDC3 call failed: the standard's error string (``NoAppsFound``, ``AccessDenied``...)."""


def _valid(context: Any) -> bool:
    return isinstance(context, dict) and isinstance(context.get("type"), str) and bool(context["type"])


class Listener:
    """A context or intent listener; ``await listener.unsubscribe()`` removes it."""

    def __init__(self, fdc3: "Fdc3", listener_id: str, table: Dict[str, Any], request: str) -> None:
        self._fdc3, self.id, self._table, self._request = fdc3, listener_id, table, request

    async def unsubscribe(self) -> None:
        if self._table.pop(self.id, None) is not None:
            await self._fdc3._request(self._request, {"listenerUUID": self.id})


class Channel:
    """A user or app channel."""

    def __init__(self, fdc3: "Fdc3", raw: Dict[str, Any]) -> None:
        self._fdc3 = fdc3
        self.id: str = raw.get("id", "")
        self.type: str = raw.get("type", "app")
        self.display_metadata: Optional[Dict[str, Any]] = raw.get("displayMetadata")

    async def broadcast(self, context: Dict[str, Any]) -> None:
        if not _valid(context):
            raise Fdc3Error("MalformedContext")
        await self._fdc3._request("broadcastRequest", {"channelId": self.id, "context": context})

    async def get_current_context(self, context_type: Optional[str] = None) -> Optional[Dict[str, Any]]:
        p = await self._fdc3._request("getCurrentContextRequest", {"channelId": self.id, "contextType": context_type})
        return p.get("context")

    async def add_context_listener(self, context_type: Optional[str], handler: Callable[..., Any]) -> Listener:
        return await self._fdc3._add_context_listener(self.id, context_type, handler)


class IntentResolution:
    """Where a raised intent went: ``source`` (``{"appId", "instanceId"}``) and ``intent``; its
    result with ``await resolution.get_result()``."""

    def __init__(self, source: Dict[str, Any], intent: str, result: "asyncio.Future[Any]") -> None:
        self.source, self.intent, self._result = source, intent, result

    async def get_result(self) -> Any:
        """The handler's result: a context, a channel, or None; raises :class:`Fdc3Error`."""
        try:
            p = await asyncio.wait_for(asyncio.shield(self._result), RAISE_TIMEOUT)
        except asyncio.TimeoutError as e:
            raise Fdc3Error("ApiTimeout") from e
        if p.get("error"):
            raise Fdc3Error(p["error"])
        r = p.get("intentResult") or {}
        return r.get("context") or r.get("channel")


class Fdc3:
    """The Desktop Agent API for a native app (snake_case names of ``window.fdc3``'s)."""

    def __init__(self, client: "Client") -> None:
        self._client = client
        self._pending: Dict[str, "asyncio.Future[Dict[str, Any]]"] = {}
        self._results: Dict[str, "asyncio.Future[Dict[str, Any]]"] = {}
        self._context_listeners: Dict[str, Any] = {}
        self._intent_listeners: Dict[str, Any] = {}
        self.current_channel_id: Optional[str] = None

    # ---- requests -----------------------------------------------------------------------

    async def _send(self, kind: str, payload: Dict[str, Any], request_uuid: str) -> None:
        meta = {"requestUuid": request_uuid, "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        await self._client._send({"type": kind, "payload": payload, "meta": meta})

    async def _request(
        self, kind: str, payload: Dict[str, Any], on_answer: Optional[Callable[[Dict[str, Any]], None]] = None, timeout: float = REQUEST_TIMEOUT
    ) -> Dict[str, Any]:
        """Sends a DACP request; returns its response's payload. ``on_answer`` runs as the
        response is read, before any later message (a listener is in place for what follows)."""
        request_uuid = str(uuid.uuid4())
        fut: "asyncio.Future[Dict[str, Any]]" = asyncio.get_running_loop().create_future()
        fut.on_answer = on_answer  # type: ignore[attr-defined]
        self._pending[request_uuid] = fut
        try:
            await self._send(kind, payload, request_uuid)
            m = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError as e:
            raise Fdc3Error("ApiTimeout") from e
        finally:
            self._pending.pop(request_uuid, None)
        p = m.get("payload") or {}
        if p.get("error"):
            raise Fdc3Error(p["error"])
        return p

    async def request(self, kind: str, payload: Dict[str, Any]) -> Dict[str, Any]:
        """Any DACP request (``findInstancesRequest``...); its response's payload."""
        return await self._request(kind, payload)

    # ---- the API ------------------------------------------------------------------------

    async def broadcast(self, context: Dict[str, Any]) -> None:
        """Broadcasts on the user channel this app has joined (nothing happens on none)."""
        if not _valid(context):
            raise Fdc3Error("MalformedContext")
        await self._request("broadcastRequest", {"channelId": self.current_channel_id, "context": context})

    async def add_context_listener(self, context_type: Optional[str], handler: Callable[..., Any]) -> Listener:
        """``handler(context, metadata)`` for contexts (of ``context_type``, or any) on the user
        channel the app is on; ``metadata["source"]`` is the originating app."""
        return await self._add_context_listener(None, context_type, handler)

    async def _add_context_listener(self, channel_id: Optional[str], context_type: Optional[str], handler: Callable[..., Any]) -> Listener:
        entry = (channel_id, context_type, handler)
        table = self._context_listeners
        p = await self._request(
            "addContextListenerRequest",
            {"channelId": channel_id, "contextType": context_type},
            on_answer=lambda p: table.__setitem__(p["listenerUUID"], entry),
        )
        return Listener(self, p["listenerUUID"], table, "contextListenerUnsubscribeRequest")

    async def add_intent_listener(self, intent: str, handler: Callable[..., Any]) -> Listener:
        """``handler(context, metadata)`` answers ``intent``: what it returns (a context, or
        None) is the raiser's result; what it raises, the raiser's error."""
        table = self._intent_listeners
        p = await self._request(
            "addIntentListenerRequest",
            {"intent": intent},
            on_answer=lambda p: table.__setitem__(p["listenerUUID"], (intent, handler)),
        )
        return Listener(self, p["listenerUUID"], table, "intentListenerUnsubscribeRequest")

    async def raise_intent(self, intent: str, context: Dict[str, Any], app: Optional[str] = None) -> IntentResolution:
        """Raises ``intent`` with ``context`` at ``app``, or wherever the resolver says."""
        if not _valid(context):
            raise Fdc3Error("MalformedContext")
        payload: Dict[str, Any] = {"intent": intent, "context": context}
        if app is not None:
            payload["app"] = {"appId": app}
        return await self._raise("raiseIntentRequest", payload, intent)

    async def raise_intent_for_context(self, context: Dict[str, Any], app: Optional[str] = None) -> IntentResolution:
        if not _valid(context):
            raise Fdc3Error("MalformedContext")
        payload: Dict[str, Any] = {"context": context}
        if app is not None:
            payload["app"] = {"appId": app}
        return await self._raise("raiseIntentForContextRequest", payload, "")

    async def _raise(self, kind: str, payload: Dict[str, Any], intent: str) -> IntentResolution:
        request_uuid = str(uuid.uuid4())
        loop = asyncio.get_running_loop()
        answer: "asyncio.Future[Dict[str, Any]]" = loop.create_future()
        result: "asyncio.Future[Dict[str, Any]]" = loop.create_future()
        self._pending[request_uuid] = answer
        self._results[request_uuid] = result
        try:
            await self._send(kind, payload, request_uuid)
            m = await asyncio.wait_for(answer, RAISE_TIMEOUT)
        except asyncio.TimeoutError as e:
            self._results.pop(request_uuid, None)
            raise Fdc3Error("ApiTimeout") from e
        finally:
            self._pending.pop(request_uuid, None)
        p = m.get("payload") or {}
        if p.get("error"):
            self._results.pop(request_uuid, None)
            raise Fdc3Error(p["error"])
        r = p.get("intentResolution") or {}
        return IntentResolution(r.get("source") or {}, r.get("intent", intent), result)

    async def find_intent(self, intent: str, context: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        payload: Dict[str, Any] = {"intent": intent}
        if context is not None:
            payload["context"] = context
        return (await self._request("findIntentRequest", payload))["appIntent"]

    async def find_intents_by_context(self, context: Dict[str, Any]) -> List[Dict[str, Any]]:
        return (await self._request("findIntentsByContextRequest", {"context": context}))["appIntents"]

    async def open(self, app: str, context: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        payload: Dict[str, Any] = {"app": {"appId": app}}
        if context is not None:
            payload["context"] = context
        return (await self._request("openRequest", payload, timeout=RAISE_TIMEOUT))["appIdentifier"]

    async def get_info(self) -> Dict[str, Any]:
        return (await self._request("getInfoRequest", {}))["implementationMetadata"]

    async def get_user_channels(self) -> List[Channel]:
        return [Channel(self, c) for c in (await self._request("getUserChannelsRequest", {}))["userChannels"]]

    async def join_user_channel(self, channel_id: str) -> None:
        await self._request("joinUserChannelRequest", {"channelId": channel_id})
        self.current_channel_id = channel_id

    async def leave_current_channel(self) -> None:
        await self._request("leaveCurrentChannelRequest", {})
        self.current_channel_id = None

    async def get_current_channel(self) -> Optional[Channel]:
        c = (await self._request("getCurrentChannelRequest", {})).get("channel")
        return Channel(self, c) if c else None

    async def get_or_create_channel(self, channel_id: str) -> Channel:
        return Channel(self, (await self._request("getOrCreateChannelRequest", {"channelId": channel_id}))["channel"])

    # ---- messages from the agent --------------------------------------------------------

    def _close(self, why: str) -> None:
        for fut in list(self._pending.values()) + list(self._results.values()):
            if not fut.done():
                fut.set_exception(Fdc3Error(f"the connection is closed: {why}"))

    def _dispatch(self, m: Dict[str, Any]) -> None:
        kind = m.get("type", "")
        meta = m.get("meta") or {}
        p = m.get("payload") or {}
        if kind == "raiseIntentResultResponse":
            fut = self._results.pop(meta.get("requestUuid"), None)
            if fut is not None and not fut.done():
                fut.set_result(p)
            return
        if kind.endswith("Response"):
            fut = self._pending.get(meta.get("requestUuid"))
            if fut is not None and not fut.done():
                on_answer = getattr(fut, "on_answer", None)
                if on_answer is not None and not p.get("error"):
                    on_answer(p)
                fut.set_result(m)
            return
        if kind == "broadcastEvent":
            context = p.get("context") or {}
            metadata = _metadata(m)
            channel = p.get("channelId")
            for on, wants, handler in list(self._context_listeners.values()):
                here = (channel is None or channel == self.current_channel_id) if on is None else on == channel
                if here and (wants is None or wants == context.get("type")):
                    self._client._spawn(_call(handler, context, metadata))
        elif kind == "intentEvent":
            self._client._spawn(self._on_intent(m))
        elif kind == "channelChangedEvent":
            self.current_channel_id = p.get("currentChannelId", p.get("newChannelId"))

    async def _on_intent(self, m: Dict[str, Any]) -> None:
        p = m.get("payload") or {}
        answer: Dict[str, Any] = {
            "intentEventUuid": (m.get("meta") or {}).get("eventUuid"),
            "raiseIntentRequestUuid": p.get("raiseIntentRequestUuid"),
            "intentResult": {},
        }
        handler = next((h for (i, h) in self._intent_listeners.values() if i == p.get("intent")), None)
        if handler is None:
            answer["error"] = "no listener"
        else:
            try:
                value = await _call(handler, p.get("context"), _metadata(m))
                if isinstance(value, Channel):
                    answer["intentResult"] = {"channel": {"id": value.id, "type": value.type, "displayMetadata": value.display_metadata}}
                elif _valid(value):
                    answer["intentResult"] = {"context": value}
                elif value is not None:
                    answer["error"] = "the handler returned something that is neither a context nor a channel"
            except Exception as e:  # noqa: BLE001 - the handler's failure is the raiser's error
                answer["error"] = str(e) or type(e).__name__
        try:
            await self._request("intentResultRequest", answer)
        except Exception as e:  # noqa: BLE001
            import sys

            print(f"tessera_client: the intent result was refused: {e}", file=sys.stderr)


def _metadata(m: Dict[str, Any]) -> Dict[str, Any]:
    """What a listener is told with a context: its source, and the trace it came in (FDC3 3.0's
    ``traceId``, and the W3C ``traceparent``) when it came in one."""
    p = m.get("payload") or {}
    metadata: Dict[str, Any] = {"source": p.get("originatingApp")}
    trace_id = (p.get("metadata") or {}).get("traceId")
    if isinstance(trace_id, str):
        metadata["traceId"] = trace_id
    traceparent = (m.get("meta") or {}).get("traceparent")
    if isinstance(traceparent, str):
        metadata["traceparent"] = traceparent
    return metadata


async def _call(handler: Callable[..., Any], *args: Any) -> Any:
    value = handler(*args)
    if inspect.isawaitable(value):
        value = await value
    return value
