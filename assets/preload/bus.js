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
  const post = ipc && ipc.postMessage ? ipc.postMessage.bind(ipc) : function () {};
  let nextId = 1;
  const uuid = () =>
    (self.crypto && crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + "-" + nextId++);
  const subscriptions = new Map();
  const errorHandlers = new Set();

  function send(type, payload) {
    post(JSON.stringify({ type: type, payload: payload, meta: { requestUuid: uuid(), timestamp: new Date().toISOString() } }));
  }

  function checkTopic(name, value) {
    if (typeof value !== "string" || value.length === 0) {
      throw new TypeError(name + " must be a non-empty string");
    }
  }

  const host = {
    post: send,
    // Called by the host with an array of deliveries: {sub, topic, data, seq, timestamp, sender}.
    deliver: function (batch) {
      for (const d of batch) {
        const sub = subscriptions.get(d.sub);
        if (!sub) {
          continue;
        }
        try {
          sub.handler(d.data, { topic: d.topic, seq: d.seq, timestamp: d.timestamp, sender: d.sender });
        } catch (e) {
          console.error("tessera.bus: subscriber for", sub.pattern, "threw", e);
        }
      }
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
    // Publishes `data` (anything JSON can hold) to `topic`.
    publish: function (topic, data, options) {
      checkTopic("topic", topic);
      const o = options || {};
      send("bus.publish", {
        topic: topic,
        data: data === undefined ? null : data,
        durable: !!o.durable,
        ttlMs: typeof o.ttlMs === "number" ? o.ttlMs : null,
      });
    },
    // Calls handler(data, meta) for every message on a topic matching `pattern` (`*` one
    // segment, `#` any number). Returns {unsubscribe()}.
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
      });
      return {
        unsubscribe: function () {
          if (subscriptions.delete(sub)) {
            send("bus.unsubscribe", { sub: sub });
          }
        },
      };
    },
    // Calls handler(error) when the shell refuses a publish or a subscription.
    onError: function (handler) {
      errorHandlers.add(handler);
      return function () {
        errorHandlers.delete(handler);
      };
    },
  };
  window.tessera = Object.freeze(Object.assign({}, window.tessera || {}, { bus: Object.freeze(bus) }));
})();
