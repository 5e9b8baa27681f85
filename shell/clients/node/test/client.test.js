// The client against a stand-in for the shell's endpoint (frames by hand); the real shell is in
// the workspace's end-to-end tests (tests/it/native.rs).
"use strict";

const test = require("node:test");
const assert = require("node:assert");
const net = require("node:net");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { connect } = require("..");

function frame(m) {
  const body = Buffer.from(JSON.stringify(m));
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

// A fake shell: its side of one connection, message by message.
function fakeShell() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tessera-node-"));
  const sock = path.join(dir, "e.sock");
  let resolveConn;
  const conn = new Promise((r) => (resolveConn = r));
  const sockets = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    let buf = Buffer.alloc(0);
    const queue = [];
    const waiters = [];
    s.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const m = JSON.parse(buf.subarray(4, 4 + buf.readUInt32BE(0)).toString());
        buf = buf.subarray(4 + buf.readUInt32BE(0));
        if (waiters.length) waiters.shift()(m);
        else queue.push(m);
      }
    });
    resolveConn({
      recv: () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r))),
      send: (m) => s.write(frame(m)),
    });
  });
  server.listen(sock);
  const close = () => {
    for (const s of sockets) s.destroy();
    server.close();
  };
  return { sock, conn, close };
}

const WELCOME = { type: "welcome", payload: { protocol: 1, app: "blotter", instance: 2, client: 7 } };

async function pair(welcome) {
  const shell = fakeShell();
  const connecting = connect(shell.sock, "tok");
  const s = await shell.conn;
  const hello = await s.recv();
  assert.deepStrictEqual([hello.type, hello.payload.token, hello.payload.protocol], ["hello", "tok", 1]);
  s.send(welcome);
  return { connecting, s, shell };
}

test("the bus round-trips through the connection", async () => {
  const { connecting, s, shell } = await pair(WELCOME);
  const client = await connecting;
  assert.deepStrictEqual([client.app, client.instance], ["blotter", 2]);
  // The agent asks for its channel as it starts.
  const start = await s.recv();
  assert.strictEqual(start.type, "getCurrentChannelRequest");
  s.send({ type: "getCurrentChannelResponse", payload: { channel: null }, meta: { requestUuid: start.meta.requestUuid } });
  await client.fdc3Ready;

  client.publish("a.b", { x: 1 });
  assert.deepStrictEqual(await s.recv(), { type: "bus.publish", payload: { topic: "a.b", data: { x: 1 } } });

  const got = [];
  client.subscribe("a.#", (data, meta) => got.push([meta.topic, data]));
  const sub = await s.recv();
  s.send({ type: "bus.deliver", payload: { sub: sub.payload.sub, topic: "a.c", data: [1], seq: 1, timestamp: 2, sender: 3 } });
  s.send({ type: "ping", payload: { nonce: 5 } });
  assert.deepStrictEqual(await s.recv(), { type: "pong", payload: { nonce: 5 } });
  assert.deepStrictEqual(got, [["a.c", [1]]]);

  // In a trace: sent with the publish, told with the delivery.
  const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  client.publish("a.t", 1, { traceparent: tp });
  assert.deepStrictEqual((await s.recv()).payload, { topic: "a.t", data: 1, traceparent: tp });
  const metas = [];
  client.subscribe("t.#", (data, meta) => metas.push(meta.traceparent));
  const tsub = await s.recv();
  s.send({ type: "bus.deliver", payload: { sub: tsub.payload.sub, topic: "t.u", data: 1, traceparent: tp, seq: 2, timestamp: 2, sender: 3 } });
  s.send({ type: "ping", payload: { nonce: 6 } });
  assert.deepStrictEqual(await s.recv(), { type: "pong", payload: { nonce: 6 } });
  assert.deepStrictEqual(metas, [tp]);

  client.serve("svc", { double: (d) => d.n * 2, fail: () => { throw new Error("nope"); } });
  await s.recv();
  s.send({ type: "bus.call", payload: { service: "svc", call: 1, action: "double", data: { n: 4 }, from: "web" } });
  assert.deepStrictEqual((await s.recv()).payload, { service: "svc", call: 1, ok: true, value: 8 });
  s.send({ type: "bus.call", payload: { service: "svc", call: 2, action: "fail", data: null, from: "web" } });
  assert.deepStrictEqual((await s.recv()).payload, { service: "svc", call: 2, ok: false, error: "nope" });

  const calling = client.request("other", "go", { a: 1 });
  const r = await s.recv();
  s.send({ type: "bus.response", payload: { call: r.payload.call, ok: true, value: "done" } });
  assert.strictEqual(await calling, "done");

  s.send({ type: "error", payload: { error: "rate limit" } });
  assert.strictEqual(await client.closed(), "rate limit");
  assert.throws(() => client.publish("a", 1), /closed: rate limit/);
  shell.close();
});

test("a refused hello rejects with the shell's reason", async () => {
  const { connecting, shell } = await pair({ type: "error", payload: { error: "the launch token expired" } });
  await assert.rejects(connecting, /the launch token expired/);
  shell.close();
});

test("fdc3 is the standard agent over the connection", async () => {
  const { connecting, s, shell } = await pair(WELCOME);
  const client = await connecting;
  const start = await s.recv();
  s.send({ type: "getCurrentChannelResponse", payload: { channel: null }, meta: { requestUuid: start.meta.requestUuid } });
  const joining = client.fdc3.joinUserChannel("fdc3.channel.1");
  const j = await s.recv();
  assert.strictEqual(j.type, "joinUserChannelRequest");
  s.send({ type: "joinUserChannelResponse", payload: {}, meta: { requestUuid: j.meta.requestUuid } });
  await joining;
  const seen = [];
  const listening = client.fdc3.addContextListener("fdc3.instrument", (c, m) => seen.push([c, m]));
  const l = await s.recv();
  s.send({ type: "addContextListenerResponse", payload: { listenerUUID: "L" }, meta: { requestUuid: l.meta.requestUuid } });
  await listening;
  const cur = await s.recv();
  assert.strictEqual(cur.type, "getCurrentContextRequest");
  s.send({ type: "getCurrentContextResponse", payload: { context: null }, meta: { requestUuid: cur.meta.requestUuid } });
  const ctx = { type: "fdc3.instrument", id: { ticker: "MSFT" } };
  s.send({ type: "broadcastEvent", payload: { channelId: "fdc3.channel.1", context: ctx, originatingApp: { appId: "web" } }, meta: {} });
  const broadcasting = client.fdc3.broadcast(ctx);
  const b = await s.recv();
  assert.deepStrictEqual(b.payload, { channelId: "fdc3.channel.1", context: ctx });
  s.send({ type: "broadcastResponse", payload: {}, meta: { requestUuid: b.meta.requestUuid } });
  await broadcasting;
  assert.deepStrictEqual(seen, [[ctx, { source: { appId: "web" } }]]);
  const finding = client.fdc3.findIntent("Nope");
  const f = await s.recv();
  s.send({ type: "findIntentResponse", payload: { error: "NoAppsFound" }, meta: { requestUuid: f.meta.requestUuid } });
  await assert.rejects(finding, /NoAppsFound/);
  client.close();
  shell.close();
});

test("an app started elsewhere answers the challenge with its key", async () => {
  const crypto = require("node:crypto");
  const { connectWithCredential } = require("..");
  const shell = fakeShell();
  const seed = "07".repeat(32);
  const credential = { kind: "tessera.credential", app: "oms", publicKey: "00" };
  const connecting = connectWithCredential(shell.sock, credential, seed);
  const s = await shell.conn;
  const hello = await s.recv();
  assert.deepStrictEqual(hello.payload.credential, credential);
  s.send({ type: "challenge", payload: { nonce: "abc123" } });
  const proof = await s.recv();
  assert.strictEqual(proof.type, "proof");
  const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), Buffer.from(seed, "hex")]);
  const publicKey = crypto.createPublicKey(crypto.createPrivateKey({ key: der, format: "der", type: "pkcs8" }));
  const message = Buffer.from("tessera-endpoint-proof\noms\nabc123");
  assert.ok(crypto.verify(null, message, publicKey, Buffer.from(proof.payload.signature, "hex")));
  assert.ok(!crypto.verify(null, Buffer.from("tessera-endpoint-proof\noms\nother"), publicKey, Buffer.from(proof.payload.signature, "hex")));
  s.send(WELCOME);
  const client = await connecting;
  assert.strictEqual(client.app, "blotter");
  client.close();
  shell.close();
});

test("over a WebSocket: one text message a frame, both ways", async () => {
  const { WebSocketServer } = require("ws");
  const { connectWebSocketWithCredential } = require("..");
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((r) => server.once("listening", r));
  const url = `ws://127.0.0.1:${server.address().port}`;
  const got = [];
  const waiters = [];
  let ws;
  server.on("connection", (socket, request) => {
    ws = socket;
    // What a browser would send (and the shell refuses): none.
    assert.strictEqual(request.headers.origin, undefined);
    socket.on("message", (data, isBinary) => {
      assert.ok(!isBinary, "only text messages");
      const m = JSON.parse(String(data));
      if (waiters.length) waiters.shift()(m);
      else got.push(m);
    });
  });
  const recv = () => (got.length ? Promise.resolve(got.shift()) : new Promise((r) => waiters.push(r)));
  const credential = { kind: "tessera.credential", app: "oms", publicKey: "00" };
  const connecting = connectWebSocketWithCredential(url, credential, "07".repeat(32));
  const hello = await recv();
  assert.deepStrictEqual([hello.type, hello.payload.credential], ["hello", credential]);
  ws.send(JSON.stringify({ type: "challenge", payload: { nonce: "n1" } }));
  assert.strictEqual((await recv()).type, "proof");
  ws.send(JSON.stringify(WELCOME));
  const client = await connecting;
  assert.strictEqual(client.app, "blotter");
  const start = await recv();
  assert.strictEqual(start.type, "getCurrentChannelRequest");
  ws.send(JSON.stringify({ type: "getCurrentChannelResponse", payload: { channel: null }, meta: { requestUuid: start.meta.requestUuid } }));
  await client.fdc3Ready;
  // A subscription's message comes back in; a publish goes out.
  const seen = new Promise((resolve) => client.subscribe("px.*", (data, meta) => resolve([meta.topic, data])));
  const sub = await recv();
  assert.strictEqual(sub.type, "bus.subscribe");
  ws.send(JSON.stringify({ type: "bus.deliver", payload: { sub: sub.payload.sub, topic: "px.a", data: { bid: 1 }, seq: 1, timestamp: 2, sender: 3 } }));
  assert.deepStrictEqual(await seen, ["px.a", { bid: 1 }]);
  client.publish("a.b", { x: 1 });
  const pub = await recv();
  assert.deepStrictEqual([pub.type, pub.payload.topic, pub.payload.data], ["bus.publish", "a.b", { x: 1 }]);
  // The shell closes: the client says so.
  ws.close();
  assert.match(await client.closed(), /closed/);
  server.close();
});
