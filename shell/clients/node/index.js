// tessera-client for Node: a native app's connection to the Tessera shell's endpoint, with the
// standard FDC3 DesktopAgent (`client.fdc3`, the same implementation web pages get: the shell's
// preload, assets/preload/fdc3.js) and the bus (publish, subscribe, send, request, serve).
//
// The protocol is shell/clients/PROTOCOL.md: u32 big-endian length-prefixed JSON frames over a
// Unix socket; a hello with the one-time launch token the shell put in TESSERA_LAUNCH_TOKEN, then
// the same envelopes a web page's preload sends.
"use strict";

const net = require("net");
// The Desktop Agent web pages get, shared: one implementation of the standard's behaviour.
const { createDesktopAgent } = require("../../../assets/preload/fdc3.js");

const PROTOCOL = 1;
const MAX_FRAME = 4 << 20;

class TesseraError extends Error {
  constructor(message) {
    super(message);
    this.name = "TesseraError";
  }
}

function frame(message) {
  const body = Buffer.from(JSON.stringify(message));
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

// Splits the shell's byte stream into JSON messages.
class Frames {
  constructor() {
    this.buf = Buffer.alloc(0);
  }
  feed(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out = [];
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (len === 0 || len > MAX_FRAME) {
        throw new TesseraError(`a frame of ${len} bytes from the shell`);
      }
      if (this.buf.length < 4 + len) break;
      out.push(JSON.parse(this.buf.subarray(4, 4 + len).toString("utf8")));
      this.buf = this.buf.subarray(4 + len);
    }
    return out;
  }
}

class Client {
  constructor(socket, frames, welcome) {
    this.socket = socket;
    this.app = welcome.app;
    this.instance = welcome.instance;
    // The state this instance last saved (setState), kept across restarts and in workspaces.
    this.state = welcome.state === undefined ? null : welcome.state;
    this._ids = 1;
    this._subs = new Map(); // sub -> handler
    this._calls = new Map(); // call -> {resolve, reject, timer}
    this._services = new Map(); // service -> {action: handler}
    this._onMessage = null;
    this._onError = null;
    this._fdc3Sink = null;
    this._closedWhy = null;
    this._closedWaiters = [];
    const host = {
      postMessage: (message) => this._send(message),
      attachFdc3: (sink) => {
        if (this._fdc3Sink) return false;
        this._fdc3Sink = sink;
        return true;
      },
    };
    const made = createDesktopAgent(host);
    /** The standard FDC3 Desktop Agent, for this app. */
    this.fdc3 = made.fdc3;
    this.fdc3Ready = made.ready;
    socket.on("data", (chunk) => {
      let messages;
      try {
        messages = frames.feed(chunk);
      } catch (e) {
        this._end(String(e.message || e));
        socket.destroy();
        return;
      }
      for (const m of messages) this._dispatch(m);
    });
    socket.on("close", () => this._end("the shell closed the connection"));
    socket.on("error", (e) => this._end(`the connection failed: ${e.message}`));
  }

  _send(message) {
    if (this._closedWhy !== null) {
      throw new TesseraError(`the connection is closed: ${this._closedWhy}`);
    }
    this.socket.write(frame(message));
  }

  _end(why) {
    if (this._closedWhy !== null) return;
    this._closedWhy = why;
    for (const c of this._calls.values()) {
      clearTimeout(c.timer);
      c.reject(new TesseraError(`the connection is closed: ${why}`));
    }
    this._calls.clear();
    for (const w of this._closedWaiters) w(why);
  }

  _dispatch(m) {
    const p = m.payload || {};
    switch (m.type) {
      case "bus.deliver": {
        const handler = this._subs.get(p.sub);
        if (handler) {
          const meta = { topic: p.topic, seq: p.seq, timestamp: p.timestamp, sender: p.sender };
          if (typeof p.traceparent === "string") meta.traceparent = p.traceparent;
          safely("subscription handler", () => handler(p.data, meta));
        }
        return;
      }
      case "bus.direct":
        if (this._onMessage) {
          safely("message handler", () => this._onMessage(p.data, { topic: p.topic, from: p.from, seq: p.seq }));
        }
        return;
      case "bus.call":
        this._answer(p);
        return;
      case "bus.response": {
        const c = this._calls.get(p.call);
        if (!c) return;
        this._calls.delete(p.call);
        clearTimeout(c.timer);
        if (p.ok) c.resolve(p.value);
        else c.reject(new TesseraError(p.error || "the call failed"));
        return;
      }
      case "bus.refused": {
        const match = /^subscribe (\d+)$/.exec(p.context || "");
        if (match) this._subs.delete(Number(match[1]));
        if (this._onError) safely("error handler", () => this._onError(new TesseraError(`${p.context}: ${p.error}`)));
        else console.error(`tessera-client: refused: ${p.context}: ${p.error}`);
        return;
      }
      case "ping":
        this._send({ type: "pong", payload: { nonce: p.nonce } });
        return;
      case "pong":
        return;
      case "error":
        this._end(p.error || "the shell closed the connection");
        this.socket.end();
        return;
      default:
        if (this._fdc3Sink) this._fdc3Sink(m);
    }
  }

  async _answer(p) {
    const handler = (this._services.get(p.service) || {})[p.action];
    const answer = { service: p.service, call: p.call };
    if (typeof handler !== "function") {
      Object.assign(answer, { ok: false, error: `${p.service} has no action ${JSON.stringify(p.action)}` });
    } else {
      try {
        const value = await handler(p.data, { from: p.from });
        Object.assign(answer, { ok: true, value: value === undefined ? null : value });
      } catch (e) {
        Object.assign(answer, { ok: false, error: String(e && e.message !== undefined ? e.message : e) });
      }
    }
    if (this._closedWhy === null) this._send({ type: "bus.respond", payload: answer });
  }

  /** Publishes `data` (any JSON value) on `topic` (in the W3C trace `options.traceparent`, if
   * given); a refusal comes to `onError`. */
  publish(topic, data, options) {
    const o = options || {};
    const payload = { topic: topic, data: data === undefined ? null : data };
    if (o.durable) payload.durable = true;
    if (typeof o.ttlMs === "number") payload.ttlMs = o.ttlMs;
    if (typeof o.traceparent === "string") payload.traceparent = o.traceparent;
    this._send({ type: "bus.publish", payload: payload });
  }

  /** Calls `handler(data, meta)` for each message on `pattern`; returns `{unsubscribe()}`. */
  subscribe(pattern, handler, options) {
    const o = options || {};
    const sub = this._ids++;
    this._subs.set(sub, handler);
    this._send({
      type: "bus.subscribe",
      payload: {
        sub: sub,
        pattern: pattern,
        capacity: o.capacity || 8192,
        policy: o.policy || "drop_oldest",
        replay: o.replay || 0,
      },
    });
    return {
      unsubscribe: () => {
        if (this._subs.delete(sub) && this._closedWhy === null) {
          this._send({ type: "bus.unsubscribe", payload: { sub: sub } });
        }
      },
    };
  }

  /** Sends `data` to one app. */
  send(app, topic, data) {
    this._send({ type: "bus.send", payload: { app: app, topic: topic, data: data === undefined ? null : data } });
  }

  /** `handler(data, {topic, from})` for each message sent to this app. */
  onMessage(handler) {
    this._onMessage = handler;
  }

  /** `handler(error)` for each thing the shell refuses. */
  onError(handler) {
    this._onError = handler;
  }

  /** Calls `action` of service `name`; resolves with its answer. */
  request(name, action, data, options) {
    const timeoutMs = (options && options.timeoutMs) || 5000;
    const call = this._ids++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._calls.delete(call);
        reject(new TesseraError(`no answer from ${name} within ${timeoutMs} ms`));
      }, timeoutMs + 5000);
      this._calls.set(call, { resolve: resolve, reject: reject, timer: timer });
      this._send({
        type: "bus.request",
        payload: { call: call, service: name, action: action, data: data === undefined ? null : data, timeoutMs: timeoutMs },
      });
    });
  }

  /** Provides service `name`: `handlers[action](data, {from})` answers (it may be async). */
  serve(name, handlers) {
    this._services.set(name, handlers);
    this._send({ type: "bus.serve", payload: { service: name, actions: Object.keys(handlers) } });
  }

  /** Saves the app's state (JSON) for workspaces. */
  setState(state) {
    this._send({ type: "workspace.setState", payload: { state: state } });
  }

  /** Tells the shell this app instance is done (it is not restarted), and closes. */
  close() {
    if (this._closedWhy === null) this._send({ type: "tessera.close" });
    this.socket.end();
  }

  /** Resolves with why once the connection is closed. */
  closed() {
    if (this._closedWhy !== null) return Promise.resolve(this._closedWhy);
    return new Promise((resolve) => this._closedWaiters.push(resolve));
  }
}

function safely(what, f) {
  try {
    const r = f();
    if (r && typeof r.then === "function") r.then(undefined, (e) => console.error(`tessera-client: ${what} failed`, e));
  } catch (e) {
    console.error(`tessera-client: ${what} threw`, e);
  }
}

/** Connects to the endpoint at `path` with a launch token. */
function connect(path, token, options) {
  return handshake(path, { token: token }, null, options);
}

/**
 * Connects an app started outside the shell: `credential` is the JSON IT issued for it
 * (`tessera sign credential`), `privateKeyHex` the app's secret key (64 hex digits), which signs
 * the shell's challenge and never leaves this process.
 */
function connectWithCredential(path, credential, privateKeyHex, options) {
  return handshake(path, { credential: credential }, signer(credential, privateKeyHex), options);
}

// What answers the shell's challenge for `credential`: the nonce signed with the app's key.
function signer(credential, privateKeyHex) {
  const crypto = require("crypto");
  // An ed25519 seed as PKCS #8 DER: the fixed prefix, then the 32 bytes.
  const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), Buffer.from(String(privateKeyHex).trim(), "hex")]);
  const key = crypto.createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  return (nonce) => crypto.sign(null, Buffer.from(`tessera-endpoint-proof\n${credential.app}\n${nonce}`), key).toString("hex");
}

/**
 * `connectWithCredential` over the endpoint's WebSocket (`ws://127.0.0.1:PORT`, where the admin
 * policy's `endpoint.websocket` opens one), for an app that cannot reach the shell's Unix socket.
 * It needs the `ws` package (an optional dependency of this one).
 */
function connectWebSocketWithCredential(url, credential, privateKeyHex, options) {
  let WebSocket;
  try {
    WebSocket = require("ws");
  } catch (e) {
    return Promise.reject(new TesseraError("a WebSocket needs the ws package: npm install ws"));
  }
  const sign = signer(credential, privateKeyHex);
  const ws = new WebSocket(url, { maxPayload: MAX_FRAME });
  return handshakeOn(webSocketStream(ws), url, { credential: credential }, sign, options);
}

// A WebSocket as the byte stream the client speaks: each frame it writes goes as one text
// message, each text message comes back as a frame; a binary message ends the connection.
function webSocketStream(ws) {
  const { Duplex } = require("stream");
  let pending = Buffer.alloc(0);
  const stream = new Duplex({
    write(chunk, _encoding, done) {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (pending.length >= 4) {
        const len = pending.readUInt32BE(0);
        if (pending.length < 4 + len) break;
        ws.send(pending.subarray(4, 4 + len).toString("utf8"));
        pending = pending.subarray(4 + len);
      }
      done();
    },
    read() {},
    final(done) {
      ws.close();
      done();
    },
    destroy(error, done) {
      ws.terminate();
      done(error);
    },
  });
  ws.on("open", () => stream.emit("connect"));
  ws.on("message", (data, isBinary) => {
    if (isBinary) {
      stream.destroy(new Error("the shell sent a binary message"));
      return;
    }
    const body = Buffer.isBuffer(data) ? data : Buffer.from(String(data));
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length);
    stream.push(Buffer.concat([head, body]));
  });
  ws.on("close", () => stream.destroy());
  ws.on("error", (e) => stream.destroy(e));
  return stream;
}

function handshake(path, proof, sign, options) {
  return handshakeOn(net.createConnection(path), path, proof, sign, options);
}

function handshakeOn(socket, path, proof, sign, options) {
  const timeoutMs = (options && options.timeoutMs) || 10000;
  return new Promise((resolve, reject) => {
    const frames = new Frames();
    let done = false;
    const fail = (e) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    };
    const timer = setTimeout(() => fail(new TesseraError(`no welcome within ${timeoutMs} ms`)), timeoutMs);
    socket.once("error", (e) => fail(new TesseraError(`the endpoint ${path}: ${e.message}`)));
    socket.once("close", () => fail(new TesseraError("the shell refused the connection: it closed it")));
    socket.on("connect", () => {
      socket.write(frame({ type: "hello", payload: Object.assign({ protocol: PROTOCOL, client: "tessera-client-node/0.1.0" }, proof) }));
    });
    const onData = (chunk) => {
      let messages;
      try {
        messages = frames.feed(chunk);
      } catch (e) {
        fail(e);
        return;
      }
      if (messages.length === 0) return;
      if (messages[0].type === "challenge" && sign) {
        const nonce = (messages.shift().payload || {}).nonce || "";
        socket.write(frame({ type: "proof", payload: { signature: sign(nonce) } }));
        sign = null;
        if (messages.length === 0) return;
      }
      const first = messages.shift();
      socket.off("data", onData);
      socket.removeAllListeners("close");
      socket.removeAllListeners("error");
      if (first.type === "error") {
        fail(new TesseraError(`the shell refused the connection: ${(first.payload || {}).error}`));
        return;
      }
      if (first.type !== "welcome") {
        fail(new TesseraError(`expected a welcome, got ${JSON.stringify(first)}`));
        return;
      }
      done = true;
      clearTimeout(timer);
      const client = new Client(socket, frames, first.payload || {});
      for (const m of messages) client._dispatch(m);
      resolve(client);
    };
    socket.on("data", onData);
  });
}

/** Connects with what the shell put in this process's environment. */
function fromEnv() {
  const path = process.env.TESSERA_ENDPOINT;
  const token = process.env.TESSERA_LAUNCH_TOKEN;
  if (!path || !token) {
    return Promise.reject(
      new TesseraError("TESSERA_ENDPOINT and TESSERA_LAUNCH_TOKEN are not set: a native app is started by the Tessera shell")
    );
  }
  return connect(path, token);
}

module.exports = { connect, connectWithCredential, connectWebSocketWithCredential, fromEnv, Client, TesseraError, PROTOCOL };
