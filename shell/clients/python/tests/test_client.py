"""The client against a stand-in for the shell's endpoint (frames by hand); the real shell is in
the workspace's end-to-end tests (tests/it/native.rs)."""

import asyncio
import json
import os
import struct
import tempfile
import unittest

from tessera_client import Client, ClientError, Closed, Fdc3Error, Refused


def frame(m):
    body = json.dumps(m).encode()
    return struct.pack(">I", len(body)) + body


class Fake:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    async def recv(self):
        (n,) = struct.unpack(">I", await asyncio.wait_for(self.reader.readexactly(4), 10))
        return json.loads(await self.reader.readexactly(n))

    async def send(self, m):
        self.writer.write(frame(m))
        await self.writer.drain()


WELCOME = {"type": "welcome", "payload": {"protocol": 1, "app": "risk", "instance": 3, "client": 9}}


class FakeShellTest(unittest.IsolatedAsyncioTestCase):
    async def _stop(self, server):
        server.close()
        self.dir.cleanup()


class ClientTest(FakeShellTest):
    async def pair(self, welcome=WELCOME):
        self.dir = tempfile.TemporaryDirectory()
        path = os.path.join(self.dir.name, "e.sock")
        accepted = asyncio.get_running_loop().create_future()
        server = await asyncio.start_unix_server(lambda r, w: accepted.set_result(Fake(r, w)), path)
        self.addAsyncCleanup(self._stop, server)
        connecting = asyncio.ensure_future(Client.connect(path, "tok"))
        shell = await accepted
        hello = await shell.recv()
        self.assertEqual(hello["type"], "hello")
        self.assertEqual(hello["payload"]["token"], "tok")
        self.assertEqual(hello["payload"]["protocol"], 1)
        await shell.send(welcome)
        return connecting, shell

    async def test_bus(self):
        connecting, shell = await self.pair()
        client = await connecting
        self.assertEqual((client.app, client.instance), ("risk", 3))

        await client.publish("a.b", {"x": 1})
        self.assertEqual(await shell.recv(), {"type": "bus.publish", "payload": {"topic": "a.b", "data": {"x": 1}}})

        sub = await client.subscribe("a.#")
        s = await shell.recv()
        self.assertEqual((s["type"], s["payload"]["pattern"]), ("bus.subscribe", "a.#"))
        await shell.send({"type": "bus.deliver", "payload": {"sub": s["payload"]["sub"], "topic": "a.c", "data": [1], "seq": 4, "timestamp": 5, "sender": 2}})
        m = await asyncio.wait_for(sub.recv(), 10)
        self.assertEqual((m.topic, m.data, m.seq, m.traceparent), ("a.c", [1], 4, None))

        # In a trace: sent with the publish, told with the delivery.
        tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        await client.publish("a.t", 1, traceparent=tp)
        self.assertEqual((await shell.recv())["payload"], {"topic": "a.t", "data": 1, "traceparent": tp})
        await shell.send({"type": "bus.deliver", "payload": {"sub": s["payload"]["sub"], "topic": "a.t", "data": 1, "traceparent": tp, "seq": 5, "timestamp": 6, "sender": 2}})
        m = await asyncio.wait_for(sub.recv(), 10)
        self.assertEqual(m.traceparent, tp)

        await shell.send({"type": "ping", "payload": {"nonce": 7}})
        self.assertEqual(await shell.recv(), {"type": "pong", "payload": {"nonce": 7}})

        # A service: the handler's answer, and its exception as the caller's error.
        def double(data, caller):
            if data["n"] < 0:
                raise ValueError("negative")
            return data["n"] * 2

        await client.serve("svc", {"double": double})
        self.assertEqual((await shell.recv())["payload"], {"service": "svc", "actions": ["double"]})
        await shell.send({"type": "bus.call", "payload": {"service": "svc", "call": 1, "action": "double", "data": {"n": 4}, "from": "web"}})
        self.assertEqual((await shell.recv())["payload"], {"service": "svc", "call": 1, "ok": True, "value": 8})
        await shell.send({"type": "bus.call", "payload": {"service": "svc", "call": 2, "action": "double", "data": {"n": -1}, "from": "web"}})
        self.assertEqual((await shell.recv())["payload"], {"service": "svc", "call": 2, "ok": False, "error": "negative"})

        # A call out, failed by the provider.
        calling = asyncio.ensure_future(client.request("other", "go", {"a": 1}))
        r = await shell.recv()
        await shell.send({"type": "bus.response", "payload": {"call": r["payload"]["call"], "ok": False, "error": "no such service"}})
        with self.assertRaisesRegex(ClientError, "no such service"):
            await calling

        # A refused subscription ends; the refusal is told.
        refusals = []
        client.on_error(refusals.append)
        denied = await client.subscribe("secret.#")
        s = await shell.recv()
        await shell.send({"type": "bus.refused", "payload": {"context": f"subscribe {s['payload']['sub']}", "error": "denied"}})
        self.assertIsNone(await asyncio.wait_for(denied.recv(), 10))
        await asyncio.sleep(0)
        self.assertEqual(refusals[0].error, "denied")

        # The shell's last word closes the client with its reason.
        await shell.send({"type": "error", "payload": {"error": "rate limit"}})
        self.assertEqual(await asyncio.wait_for(client.wait_closed(), 10), "rate limit")
        with self.assertRaisesRegex(Closed, "rate limit"):
            await client.publish("a", 1)

    async def test_refused_hello(self):
        connecting, _shell = await self.pair({"type": "error", "payload": {"error": "the launch token expired"}})
        with self.assertRaisesRegex(Refused, "expired"):
            await connecting

    async def test_fdc3(self):
        connecting, shell = await self.pair()
        client = await connecting
        seen = []
        listening = asyncio.ensure_future(client.fdc3.add_context_listener("fdc3.instrument", lambda c, m: seen.append((c, m))))
        r = await shell.recv()
        self.assertEqual(r["type"], "addContextListenerRequest")
        # The answer and a broadcast right behind it: the listener is in place for it.
        await shell.send({"type": "addContextListenerResponse", "payload": {"listenerUUID": "L"}, "meta": {"requestUuid": r["meta"]["requestUuid"]}})
        ctx = {"type": "fdc3.instrument", "id": {"ticker": "MSFT"}}
        await shell.send({"type": "broadcastEvent", "payload": {"channelId": None, "context": ctx, "originatingApp": {"appId": "web"}}, "meta": {}})
        await listening
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        self.assertEqual(seen, [(ctx, {"source": {"appId": "web"}})])

        # One in a trace: the listener is told it.
        tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        meta = {"traceparent": tp}
        payload = {"channelId": None, "context": ctx, "originatingApp": {"appId": "web"}, "metadata": {"traceId": tp[3:35]}}
        await shell.send({"type": "broadcastEvent", "payload": payload, "meta": meta})
        for _ in range(100):
            if len(seen) > 1:
                break
            await asyncio.sleep(0.01)
        self.assertEqual(seen[1][1], {"source": {"appId": "web"}, "traceId": tp[3:35], "traceparent": tp})

        # An intent raised at this app: the handler's context is the raiser's result.
        adding = asyncio.ensure_future(client.fdc3.add_intent_listener("ViewRisk", lambda c, m: {"type": "fdc3.risk", "of": c["id"]["ticker"]}))
        r = await shell.recv()
        await shell.send({"type": "addIntentListenerResponse", "payload": {"listenerUUID": "I"}, "meta": {"requestUuid": r["meta"]["requestUuid"]}})
        await adding
        await shell.send({"type": "intentEvent", "payload": {"intent": "ViewRisk", "context": ctx, "raiseIntentRequestUuid": "R", "originatingApp": {"appId": "web"}}, "meta": {"eventUuid": "E"}})
        res = await shell.recv()
        self.assertEqual(res["type"], "intentResultRequest")
        self.assertEqual(res["payload"], {"intentEventUuid": "E", "raiseIntentRequestUuid": "R", "intentResult": {"context": {"type": "fdc3.risk", "of": "MSFT"}}})

        # An error answer is the standard's string.
        finding = asyncio.ensure_future(client.fdc3.find_intent("Nope"))
        r = await shell.recv()
        await shell.send({"type": "findIntentResponse", "payload": {"error": "NoAppsFound"}, "meta": {"requestUuid": r["meta"]["requestUuid"]}})
        with self.assertRaisesRegex(Fdc3Error, "NoAppsFound"):
            await finding


if __name__ == "__main__":
    unittest.main()


class CredentialTest(FakeShellTest):
    async def test_the_challenge_is_signed_with_the_apps_key(self):
        try:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        except ImportError:
            self.skipTest("cryptography is not installed (pip install '.[credentials]')")
        self.dir = tempfile.TemporaryDirectory()
        path = os.path.join(self.dir.name, "e.sock")
        accepted = asyncio.get_running_loop().create_future()
        server = await asyncio.start_unix_server(lambda r, w: accepted.set_result(Fake(r, w)), path)
        self.addAsyncCleanup(self._stop, server)
        seed = "07" * 32
        credential = {"kind": "tessera.credential", "app": "oms", "publicKey": "00"}
        connecting = asyncio.ensure_future(Client.connect_with_credential(path, credential, seed))
        shell = await accepted
        hello = await shell.recv()
        self.assertEqual(hello["payload"]["credential"], credential)
        await shell.send({"type": "challenge", "payload": {"nonce": "abc123"}})
        proof = await shell.recv()
        public = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed)).public_key()
        public.verify(bytes.fromhex(proof["payload"]["signature"]), b"tessera-endpoint-proof\noms\nabc123")
        await shell.send(WELCOME)
        client = await connecting
        self.assertEqual(client.app, "risk")


class WebSocketTest(unittest.IsolatedAsyncioTestCase):
    async def test_one_text_message_a_frame_both_ways(self):
        try:
            from websockets.asyncio.server import serve
        except ImportError:
            self.skipTest("websockets is not installed (pip install '.[websocket]')")
        got: "asyncio.Queue" = asyncio.Queue()
        conn = asyncio.get_running_loop().create_future()

        async def handler(ws):
            # What a browser would send (and the shell refuses): none.
            self.assertIsNone(ws.request.headers.get("Origin"))
            conn.set_result(ws)
            async for message in ws:
                self.assertIsInstance(message, str, "only text messages")
                await got.put(json.loads(message))

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            credential = {"kind": "tessera.credential", "app": "oms", "publicKey": "00"}
            connecting = asyncio.ensure_future(
                Client.connect_websocket_with_credential(f"ws://127.0.0.1:{port}", credential, "07" * 32)
            )
            ws = await asyncio.wait_for(conn, 10)
            hello = await asyncio.wait_for(got.get(), 10)
            self.assertEqual((hello["type"], hello["payload"]["credential"]), ("hello", credential))
            await ws.send(json.dumps({"type": "challenge", "payload": {"nonce": "n1"}}))
            self.assertEqual((await asyncio.wait_for(got.get(), 10))["type"], "proof")
            await ws.send(json.dumps(WELCOME))
            client = await asyncio.wait_for(connecting, 10)
            self.assertEqual(client.app, "risk")
            # A publish goes out as one message; a delivery comes in as one.
            await client.publish("a.b", {"x": 1})
            while (m := await asyncio.wait_for(got.get(), 10))["type"] != "bus.publish":
                pass
            self.assertEqual(m["payload"], {"topic": "a.b", "data": {"x": 1}})
            sub = await client.subscribe("px.*")
            while (m := await asyncio.wait_for(got.get(), 10))["type"] != "bus.subscribe":
                pass
            delivery = {"sub": m["payload"]["sub"], "topic": "px.a", "data": {"bid": 1}, "seq": 1, "timestamp": 2, "sender": 3}
            await ws.send(json.dumps({"type": "bus.deliver", "payload": delivery}))
            message = await asyncio.wait_for(sub.recv(), 10)
            self.assertEqual((message.topic, message.data), ("px.a", {"bid": 1}))
            # The shell closes: the client says so.
            await ws.close()
            self.assertIn("closed", await asyncio.wait_for(client.wait_closed(), 10))
