// window.tessera.bus: Tessera's publish/subscribe bus for web apps.
//
// Injected by tessera-app-host into every frame before any page script runs. It speaks JSON
// envelopes ({type, payload, meta}) to its host over wry's IPC channel; the host turns them into
// typed messages for the shell's broker. This file is Tessera's own code (not fetched), and the
// FDC3 preload builds on the same `__tesseraHost` channel.
(function () {
  "use strict";
  if (window.__tesseraHost) {
    return;
  }
  // Captured now, before page scripts can replace window.ipc.
  const ipc = window.ipc;
  const rawPost = ipc && ipc.postMessage ? ipc.postMessage.bind(ipc) : function () {};
  // The host's handler for requests it answers as the reply to the post (a promise WebKit
  // resolves: no script evaluated in the page for the answer). Captured now too; the top frame
  // only, where the host's other messages go.
  const replyPost = (function () {
    try {
      const h = window === window.top && window.webkit && window.webkit.messageHandlers.tesseraRequest;
      return h && typeof h.postMessage === "function" ? h.postMessage.bind(h) : null;
    } catch (e) {
      return null;
    }
  })();
  // This page's token, written in by its host: frames of other origins (which get no preload
  // and cannot read this closure) cannot produce it, so the host ignores what they post.
  const TOKEN = "__TESSERA_PAGE_TOKEN__";
  // What one task posts goes to the host in one message (a JSON array when there are several),
  // at the end of the task: one hop between processes instead of one per message.
  const BATCH_MAX = 1000;
  const BATCH_BYTES = 1 << 20;
  const microtask =
    typeof window.queueMicrotask === "function" ? window.queueMicrotask.bind(window) : (f) => Promise.resolve().then(f);
  let batch = [];
  let batchBytes = 0;
  function flush() {
    if (batch.length === 0) return;
    const texts = batch;
    batch = [];
    batchBytes = 0;
    rawPost(TOKEN + (texts.length === 1 ? texts[0] : "[" + texts.join(",") + "]"));
  }
  // Messages posted that the host has not yet said it passed on (it says so every thousand or
  // so). Past WINDOW the shell is holding this app to its rate limit: what the page sends next
  // waits here, in order, and goes as the host catches up, so neither the host nor WebKit
  // piles it up (and the page's answers to the shell never wait behind it). Past HOLD_MAX
  // waiting, publishing, sending and calling throw.
  const WINDOW = 5000;
  const HOLD_MAX = 100000;
  const HOLD_BYTES = 64 << 20;
  let inFlight = 0;
  let held = [];
  let heldAt = 0;
  let heldBytes = 0;
  function postNow(text) {
    inFlight++;
    if (text.length > 65536) {
      flush();
      rawPost(TOKEN + text);
      return;
    }
    if (batch.length === 0) microtask(flush);
    batch.push(text);
    batchBytes += text.length;
    if (batch.length >= BATCH_MAX || batchBytes >= BATCH_BYTES) flush();
  }
  // Every BARRIER_EVERY messages the page waits, in a synchronous request its host answers
  // only once it has passed on everything posted before it, which it cannot do faster than
  // the shell takes it: a page sending past its rate limit is slowed to it, its script
  // paused rather than spinning. (Where the request cannot be made, the window above holds.)
  const BARRIER_EVERY = 2000;
  let sinceBarrier = 0;
  // Captured now: a page replacing it later cannot turn the pause off.
  const XHR = window.XMLHttpRequest;
  let barrierWorks = typeof XHR === "function";
  function barrier() {
    flush();
    try {
      const x = new XHR();
      x.open("GET", "tessera-wait://host/", false);
      x.send();
    } catch (e) {
      barrierWorks = false;
    }
  }
  function post(text) {
    if (barrierWorks && ++sinceBarrier >= BARRIER_EVERY) {
      sinceBarrier = 0;
      barrier();
    }
    if (inFlight < WINDOW && heldAt === held.length) {
      postNow(text);
      return;
    }
    held.push(text);
    heldBytes += text.length;
  }
  function release() {
    while (inFlight < WINDOW && heldAt < held.length) {
      const text = held[heldAt];
      held[heldAt++] = undefined;
      heldBytes -= text.length;
      postNow(text);
    }
    if (heldAt === held.length) {
      held = [];
      heldAt = 0;
    } else if (heldAt > 4096 && heldAt * 2 > held.length) {
      held = held.slice(heldAt);
      heldAt = 0;
    }
  }
  function room() {
    const waiting = held.length - heldAt;
    if (waiting >= HOLD_MAX || heldBytes >= HOLD_BYTES) {
      throw toError(
        "this app sends faster than its rate limit lets the shell take (" + waiting + " messages waiting); not sent"
      );
    }
  }
  let nextId = 1;
  const uuid = () =>
    (self.crypto && crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + "-" + nextId++);
  const subscriptions = new Map();
  const errorHandlers = new Set();
  const messageHandlers = new Set();
  // Directed messages that arrive before the page listens (a restarted app gets its queue at
  // once): kept, up to a bound, for the first handler.
  const earlyMessages = [];
  const MAX_EARLY = 1000;
  const services = new Map();
  const calls = new Map();
  // The FDC3 preload's receiver for the agent's messages (attached once, before page scripts).
  let fdc3Sink = null;

  function toError(message) {
    const e = new Error(message);
    e.name = "TesseraBusError";
    return e;
  }

  function send(type, payload) {
    post(JSON.stringify({ type: type, payload: payload, meta: { requestUuid: uuid(), timestamp: new Date().toISOString() } }));
  }

  function checkTopic(name, value) {
    if (typeof value !== "string" || value.length === 0) {
      throw new TypeError(name + " must be a non-empty string");
    }
  }

  // Hands the page what the host delivered (see `host.deliver`), in order.
  function deliverNow(batch) {
    for (const d of batch) {
      if (d.fdc3 !== undefined) {
        try {
          host.fdc3(d.fdc3);
        } catch (e) {
          console.error("tessera: the FDC3 receiver threw", e);
        }
        continue;
      }
      if (d.direct) {
        const meta = { topic: d.topic, from: d.from, seq: d.seq };
        if (messageHandlers.size === 0) {
          if (earlyMessages.length < MAX_EARLY) earlyMessages.push([d.data, meta]);
          continue;
        }
        for (const h of messageHandlers) {
          try {
            h(d.data, meta);
          } catch (e) {
            console.error("tessera.bus: message handler threw", e);
          }
        }
        continue;
      }
      const sub = subscriptions.get(d.sub);
      if (!sub) {
        continue;
      }
      try {
        const meta = { topic: d.topic, seq: d.seq, timestamp: d.timestamp, sender: d.sender };
        if (d.traceparent !== undefined) meta.traceparent = d.traceparent;
        sub.handler(d.data, meta);
      } catch (e) {
        console.error("tessera.bus: subscriber for", sub.pattern, "threw", e);
      }
    }
  }
  // Requests answered as replies to their posts, seen here (fulfilled or not); what the host
  // delivered after answering more than that waits, in order, for them (at most DEFER_MAX_MS).
  let repliesSettled = 0;
  const deferred = [];
  let deferTimer = null;
  const DEFER_MAX_MS = 100;
  function deliverDeferred(all) {
    if (all) {
      // A reply the page never saw: counted as seen, so what follows does not wait for it.
      for (const d of deferred) repliesSettled = Math.max(repliesSettled, d[1]);
    }
    while (deferred.length > 0 && (all || deferred[0][1] <= repliesSettled)) {
      deliverNow(deferred.shift()[0]);
    }
    if (deferTimer !== null && (all || deferred.length === 0)) {
      clearTimeout(deferTimer);
      deferTimer = null;
    }
  }

  const host = {
    // For the shell's own scripts (an evaluation's result): goes at once, ahead of what the
    // page's sends have waiting.
    post: function (type, payload) {
      postNow(JSON.stringify({ type: type, payload: payload, meta: { requestUuid: uuid(), timestamp: new Date().toISOString() } }));
    },
    // Posts a message the caller built whole (DACP messages carry their own meta).
    postMessage: function (message) {
      room();
      post(JSON.stringify(message));
    },
    // Posts a request the caller built whole whose answer the host may give as the reply to
    // the post (then handed to the FDC3 receiver); in order after everything posted before it.
    // While the page is held to its rate limit, or without the reply handler, it is posted
    // like any other message and answered like one.
    request: function (message) {
      room();
      const text = JSON.stringify(message);
      if (!replyPost || heldAt !== held.length || inFlight >= WINDOW) {
        post(text);
        return;
      }
      if (barrierWorks && ++sinceBarrier >= BARRIER_EVERY) {
        sinceBarrier = 0;
        barrier();
      }
      flush();
      inFlight++;
      replyPost(TOKEN + text).then(
        (answer) => {
          repliesSettled++;
          if (typeof answer === "string" && answer.length > 0) {
            try {
              host.fdc3(JSON.parse(answer));
            } catch (e) {
              console.error("tessera: the FDC3 receiver threw", e);
            }
          }
          deliverDeferred(false);
        },
        () => {
          repliesSettled++;
          deliverDeferred(false);
        }
      );
    },
    // Called by the host with how many more of this page's messages it has passed on.
    ack: function (n) {
      if (typeof n === "number" && n > 0) {
        inFlight = Math.max(0, inFlight - n);
        release();
      }
    },
    // Called by the host with a DACP message from the FDC3 agent.
    fdc3: function (message) {
      if (fdc3Sink) {
        fdc3Sink(message);
      }
    },
    // The FDC3 preload attaches its receiver here; any later attempt is refused.
    attachFdc3: function (sink) {
      if (fdc3Sink || typeof sink !== "function") {
        return false;
      }
      fdc3Sink = sink;
      return true;
    },
    // Called by the host with an array of what arrived, in order: deliveries ({sub, topic,
    // data, seq, timestamp, sender}), direct messages ({direct, ...}) and the FDC3 agent's
    // messages ({fdc3}); and how many of the page's requests it had answered as replies by
    // then. WebKit may run this before the page has seen those replies: it then waits for them.
    deliver: function (batch, answered) {
      if (deferred.length > 0 || (typeof answered === "number" && repliesSettled < answered)) {
        deferred.push([batch, typeof answered === "number" ? answered : 0]);
        if (deferTimer === null) deferTimer = setTimeout(() => deliverDeferred(true), DEFER_MAX_MS);
        return;
      }
      deliverNow(batch);
    },
    // Called by the host with a call to a service this page provides.
    call: function (c) {
      const service = services.get(c.service);
      const handler = service && (service.handlers[c.action] || service.handlers["*"]);
      const answer = (ok, v) =>
        send("bus.respond", ok ? { service: c.service, call: c.call, ok: true, value: v === undefined ? null : v }
                               : { service: c.service, call: c.call, ok: false, error: String(v) });
      if (!handler) {
        answer(false, "no handler for action " + c.action);
        return;
      }
      Promise.resolve()
        .then(() => handler(c.data, { action: c.action, from: c.from }))
        .then((v) => answer(true, v), (e) => answer(false, e && e.message !== undefined ? e.message : e));
    },
    // Called by the host with the answer to one of this page's requests.
    response: function (r) {
      const pending = calls.get(r.call);
      if (!pending) return;
      calls.delete(r.call);
      if (r.ok) pending.resolve(r.value);
      else pending.reject(toError(r.error));
    },
    // Called by the host when the shell refused something.
    refused: function (context, error) {
      const err = new Error(context + ": " + error);
      if (errorHandlers.size === 0) {
        console.warn("tessera.bus:", err.message);
      }
      for (const h of errorHandlers) {
        try {
          h(err);
        } catch (e) {
          console.error(e);
        }
      }
    },
  };
  Object.defineProperty(window, "__tesseraHost", { value: Object.freeze(host), enumerable: false });

  const bus = {
    // Publishes `data` (anything JSON can hold) to `topic`. Options: durable, ttlMs, and
    // traceparent (a W3C traceparent: the message travels in that trace).
    publish: function (topic, data, options) {
      checkTopic("topic", topic);
      room();
      const o = options || {};
      const p = {
        topic: topic,
        data: data === undefined ? null : data,
        durable: !!o.durable,
        ttlMs: typeof o.ttlMs === "number" ? o.ttlMs : null,
      };
      if (o.traceparent !== undefined && o.traceparent !== null) {
        if (typeof o.traceparent !== "string") {
          throw new TypeError("traceparent must be a string (a W3C traceparent)");
        }
        p.traceparent = o.traceparent;
      }
      send("bus.publish", p);
    },
    // A new W3C traceparent (a new trace, marked to be recorded), to publish in: pass it as
    // the `traceparent` option, or the one a received message's meta carries to go on in its
    // trace. The shell records a trace only where IT's policy names a collector.
    newTrace: function () {
      const hex = (n) => {
        const b = new Uint8Array(n);
        crypto.getRandomValues(b);
        if (b.every((x) => x === 0)) b[0] = 1;
        return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
      };
      return "00-" + hex(16) + "-" + hex(8) + "-01";
    },
    // Calls handler(data, meta) for every message on a topic matching `pattern` (`*` one
    // segment, `#` any number). Options: capacity, policy ("drop_oldest", "backpressure",
    // "dead_letter"), and replay: "last" (each matching topic's last message first) or a number
    // (up to that many of each topic's latest messages first). Returns {unsubscribe()}.
    subscribe: function (pattern, handler, options) {
      checkTopic("pattern", pattern);
      if (typeof handler !== "function") {
        throw new TypeError("handler must be a function");
      }
      const o = options || {};
      const sub = nextId++;
      subscriptions.set(sub, { pattern: pattern, handler: handler });
      send("bus.subscribe", {
        sub: sub,
        pattern: pattern,
        capacity: typeof o.capacity === "number" ? o.capacity : 1024,
        policy: o.policy || "drop_oldest",
        replay: o.replay === "last" ? 1 : typeof o.replay === "number" && o.replay > 0 ? Math.floor(o.replay) : 0,
      });
      return {
        unsubscribe: function () {
          if (subscriptions.delete(sub)) {
            send("bus.unsubscribe", { sub: sub });
          }
        },
      };
    },
    // Sends `data` to one app by id: its running instance, or, while it restarts, its queue.
    send: function (appId, topic, data) {
      checkTopic("appId", appId);
      checkTopic("topic", topic);
      room();
      send("bus.send", { app: appId, topic: topic, data: data === undefined ? null : data });
    },
    // Calls handler(data, {topic, from, seq}) for every message sent to this app.
    onMessage: function (handler) {
      if (typeof handler !== "function") {
        throw new TypeError("handler must be a function");
      }
      messageHandlers.add(handler);
      while (earlyMessages.length > 0) {
        const [data, meta] = earlyMessages.shift();
        try {
          handler(data, meta);
        } catch (e) {
          console.error("tessera.bus: message handler threw", e);
        }
      }
      return function () {
        messageHandlers.delete(handler);
      };
    },
    // Provides a service: `handlers` maps action names (or "*") to functions of
    // (data, {action, from}) returning a value or a promise. Returns {stop()}.
    serve: function (name, handlers) {
      checkTopic("name", name);
      if (!handlers || typeof handlers !== "object") {
        throw new TypeError("handlers must map action names to functions");
      }
      const actions = Object.keys(handlers).filter((a) => a !== "*");
      services.set(name, { handlers: handlers });
      send("bus.serve", { service: name, actions: "*" in handlers ? [] : actions });
      return {
        stop: function () {
          if (services.delete(name)) {
            send("bus.unserve", { service: name });
          }
        },
      };
    },
    // Calls `action` on service `name`; resolves with its answer, rejects with its refusal,
    // or after `timeoutMs` (default 5000).
    request: function (name, action, data, options) {
      checkTopic("name", name);
      checkTopic("action", action);
      const o = options || {};
      try {
        room();
      } catch (e) {
        return Promise.reject(e);
      }
      const call = nextId++;
      const timeoutMs = typeof o.timeoutMs === "number" ? o.timeoutMs : 5000;
      return new Promise((resolve, reject) => {
        calls.set(call, { resolve: resolve, reject: reject });
        send("bus.request", {
          call: call, service: name, action: action, data: data === undefined ? null : data, timeoutMs: timeoutMs,
        });
      });
    },
    // Calls handler(error) when the shell refuses a publish or a subscription.
    onError: function (handler) {
      errorHandlers.add(handler);
      return function () {
        errorHandlers.delete(handler);
      };
    },
  };
  // The app's own state for workspaces: what it saved last, handed back when it is restarted
  // or its workspace restored.
  const restored = window.__tesseraState === undefined ? null : window.__tesseraState;
  const workspace = {
    // The state saved with the workspace this instance was opened from (or before a restart).
    getState: function () {
      return restored === null ? null : JSON.parse(JSON.stringify(restored));
    },
    // Keeps `state` (anything JSON can hold, at most 1 MiB) with the workspace.
    setState: function (state) {
      send("workspace.setState", { state: state === undefined ? null : state });
    },
  };
  // The page's console, copied to the shell's log where the admin policy asks for this app's
  // (its host then sets __tesseraConsole first): at most 50 lines a second, each cut at 4 KiB,
  // and the errors the page did not catch.
  const consoleWanted = window.__tesseraConsole === true;
  delete window.__tesseraConsole;
  if (consoleWanted) {
    const describe = function (v) {
      if (typeof v === "string") return v;
      if (v instanceof Error) return v.name + ": " + v.message;
      try {
        const text = JSON.stringify(v);
        return text === undefined ? String(v) : text;
      } catch (e) {
        return String(v);
      }
    };
    let second = 0;
    let lines = 0;
    const copy = function (level, args) {
      const now = Math.floor(Date.now() / 1000);
      if (now !== second) {
        second = now;
        lines = 0;
      }
      if (++lines > 50) return;
      try {
        send("tessera.console", { level: level, text: Array.prototype.map.call(args, describe).join(" ").slice(0, 4096) });
      } catch (e) {
        // The bus is holding this app back: the console waits for no one.
      }
    };
    ["debug", "log", "info", "warn", "error"].forEach(function (level) {
      const original = console[level];
      if (typeof original !== "function") return;
      console[level] = function () {
        copy(level, arguments);
        return original.apply(this, arguments);
      };
    });
    window.addEventListener("error", function (e) {
      copy("error", ["uncaught " + describe(e.error || e.message) + " at " + e.filename + ":" + e.lineno]);
    });
    window.addEventListener("unhandledrejection", function (e) {
      copy("error", ["unhandled rejection: " + describe(e.reason)]);
    });
  }
  // window.close() asks the shell to close this app's instance (its tile goes with it).
  window.close = function () {
    send("tessera.close", {});
  };
  window.tessera = Object.freeze(
    Object.assign({}, window.tessera || {}, { bus: Object.freeze(bus), workspace: Object.freeze(workspace) })
  );
})();
