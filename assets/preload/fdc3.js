// window.fdc3: Tessera's FDC3 2.2 Desktop Agent API for web apps, and (the same code) for
// native Node apps, through shell/clients/node.
//
// Injected by tessera-app-host after bus.js and before any page script. Every call becomes a
// DACP request ({type, payload, meta: {requestUuid, timestamp}}) to the shell's agent, which
// answers with the matching response (same requestUuid) and sends events (broadcastEvent,
// intentEvent, channelChangedEvent, private channel events). Errors are rejected as Error
// objects whose message is exactly the standard's string (OpenError, ResolveError, ResultError,
// ChannelError). This file is Tessera's own code.
//
// `createDesktopAgent(host)` builds the API over a `host` that posts DACP messages
// (`postMessage`) and hands the agent's messages to one sink (`attachFdc3`): in a page,
// bus.js's `window.__tesseraHost`; in Node, the client's connection (loaded as a CommonJS
// module). It returns `{fdc3, ready}` (`ready` settles once the current channel is known), or
// null if the host already has an FDC3 sink.
(function () {
  "use strict";

function createDesktopAgent(host) {
  const REQUEST_TIMEOUT_MS = 20000;
  // raiseIntent and open may wait for the resolver dialog (2 minutes) and a launch.
  const LONG_TIMEOUT_MS = 150000;
  let counter = 0;
  const uuid = () =>
    globalThis.crypto && crypto.randomUUID ? crypto.randomUUID() : "r-" + Date.now() + "-" + ++counter;

  const pending = new Map(); // requestUuid -> {resolve, reject, timer, onAnswer}
  const results = new Map(); // raise requestUuid -> {resolve, reject}
  const contextListeners = new Map(); // listenerUUID -> {channelId, contextType, handler}
  const intentListeners = new Map(); // listenerUUID -> {intent, handler}
  const eventListeners = new Map(); // listenerUUID -> {type, handler}
  const privateListeners = new Map(); // listenerUUID -> {channelId, type, handler}
  let currentChannelId = null;

  function fail(message) {
    return new Error(message);
  }

  function validContext(c) {
    return c !== null && typeof c === "object" && !Array.isArray(c) && typeof c.type === "string" && c.type.length > 0;
  }

  // A request's deadline. In Node (a native app's client) it does not keep the process alive
  // by itself: an app that closed its connection can exit without waiting for it.
  function later(f, ms) {
    const timer = setTimeout(f, ms);
    if (timer && typeof timer.unref === "function") timer.unref();
    return timer;
  }

  // What a context or intent listener is told with it: the source, and the trace it came in
  // (FDC3 3.0's traceId, and the W3C traceparent).
  function contextMetadata(m) {
    const p = m.payload || {};
    const meta = { source: p.originatingApp };
    if (p.metadata && typeof p.metadata.traceId === "string") meta.traceId = p.metadata.traceId;
    if (m.meta && typeof m.meta.traceparent === "string") meta.traceparent = m.meta.traceparent;
    return meta;
  }

  // Broadcasts on a channel, with FDC3 3.0's optional metadata ({traceId}) and Tessera's
  // W3C `traceparent` (metadata.traceparent: the broadcast travels in that trace).
  function broadcastOn(channelId, context, metadata) {
    const payload = { channelId: channelId, context: context };
    const m = metadata || {};
    if (typeof m.traceId === "string") payload.metadata = { traceId: m.traceId };
    const options = typeof m.traceparent === "string" ? { traceparent: m.traceparent } : {};
    return request("broadcastRequest", payload, options).then(() => undefined);
  }

  // A request goes where its answer can come back as the reply to the post itself, if the host
  // has that (a page's does: see bus.js `request`), else with everything else.
  const send = typeof host.request === "function" ? host.request.bind(host) : host.postMessage.bind(host);

  // Sends a request; resolves with the response's payload, rejects with its error. `onAnswer`
  // runs synchronously with a successful payload, before any later message is handled.
  function request(type, payload, options) {
    const o = options || {};
    const requestUuid = uuid();
    return new Promise((resolve, reject) => {
      const timer = later(() => {
        pending.delete(requestUuid);
        reject(fail("ApiTimeout"));
      }, o.timeoutMs || REQUEST_TIMEOUT_MS);
      pending.set(requestUuid, { resolve: resolve, reject: reject, timer: timer, onAnswer: o.onAnswer });
      const meta = { requestUuid: requestUuid, timestamp: new Date().toISOString() };
      if (typeof o.traceparent === "string") meta.traceparent = o.traceparent;
      try {
        send({
          type: type,
          payload: payload || {},
          meta: meta,
        });
      } catch (e) {
        clearTimeout(timer);
        pending.delete(requestUuid);
        reject(e);
      }
    });
  }

  function safely(what, f) {
    try {
      const r = f();
      if (r && typeof r.then === "function") {
        r.then(undefined, (e) => console.error("fdc3: " + what + " failed", e));
      }
    } catch (e) {
      console.error("fdc3: " + what + " threw", e);
    }
  }

  function listener(map, id, requestType) {
    let live = true;
    return Object.freeze({
      unsubscribe: function () {
        if (!live) {
          return Promise.resolve();
        }
        live = false;
        map.delete(id);
        return request(requestType, { listenerUUID: id }).then(() => undefined);
      },
    });
  }

  function withRequestedListener(map, requestType, payload, entry, unsubscribeType) {
    return request(requestType, payload, {
      onAnswer: (p) => map.set(p.listenerUUID, entry),
    }).then((p) => listener(map, p.listenerUUID, unsubscribeType));
  }

  // ---- channels ----------------------------------------------------------------------------

  function addChannelContextListener(channelId, a, b) {
    // (handler) is the deprecated form of (null, handler).
    const contextType = typeof a === "function" ? null : a === undefined ? null : a;
    const handler = typeof a === "function" ? a : b;
    if (typeof handler !== "function") {
      return Promise.reject(fail("InvalidArguments"));
    }
    if (contextType !== null && typeof contextType !== "string") {
      return Promise.reject(fail("InvalidArguments"));
    }
    return withRequestedListener(
      contextListeners,
      "addContextListenerRequest",
      { channelId: channelId, contextType: contextType },
      { channelId: channelId, contextType: contextType, handler: handler },
      "contextListenerUnsubscribeRequest"
    );
  }

  function makeChannel(c) {
    if (c.type === "private") {
      return makePrivateChannel(c);
    }
    const channel = {
      id: c.id,
      type: c.type,
      displayMetadata: c.displayMetadata,
      broadcast: function (context, metadata) {
        if (!validContext(context)) {
          return Promise.reject(fail("MalformedContext"));
        }
        return broadcastOn(c.id, context, metadata);
      },
      getCurrentContext: function (contextType) {
        return request("getCurrentContextRequest", { channelId: c.id, contextType: contextType || null }).then(
          (p) => p.context || null
        );
      },
      addContextListener: function (a, b) {
        return addChannelContextListener(c.id, a, b);
      },
    };
    if (channel.displayMetadata === undefined) {
      delete channel.displayMetadata;
    }
    return Object.freeze(channel);
  }

  const PRIVATE_EVENTS = {
    privateChannelOnAddContextListenerEvent: "addContextListener",
    privateChannelOnUnsubscribeEvent: "unsubscribe",
    privateChannelOnDisconnectEvent: "disconnect",
  };

  function makePrivateChannel(c) {
    const base = makeChannel({ id: c.id, type: "app" });
    function addEventListener(type, handler) {
      if (type !== null && !["addContextListener", "unsubscribe", "disconnect"].includes(type)) {
        return Promise.reject(fail("InvalidArguments"));
      }
      if (typeof handler !== "function") {
        return Promise.reject(fail("InvalidArguments"));
      }
      return withRequestedListener(
        privateListeners,
        "privateChannelAddEventListenerRequest",
        { privateChannelId: c.id, listenerType: type },
        { channelId: c.id, type: type, handler: handler },
        "privateChannelUnsubscribeEventListenerRequest"
      );
    }
    // The deprecated synchronous forms: the listener is registered in the background.
    function legacy(type, call) {
      return function (handler) {
        let inner = null;
        let dropped = false;
        addEventListener(type, (event) => call(handler, event)).then(
          (l) => {
            inner = l;
            if (dropped) {
              l.unsubscribe();
            }
          },
          (e) => console.error("fdc3: PrivateChannel listener refused", e)
        );
        return Object.freeze({
          unsubscribe: function () {
            dropped = true;
            return inner ? inner.unsubscribe() : Promise.resolve();
          },
        });
      };
    }
    return Object.freeze({
      id: c.id,
      type: "private",
      broadcast: base.broadcast,
      getCurrentContext: base.getCurrentContext,
      addContextListener: base.addContextListener,
      addEventListener: addEventListener,
      disconnect: function () {
        return request("privateChannelDisconnectRequest", { channelId: c.id }).then(() => undefined);
      },
      onAddContextListener: legacy("addContextListener", (h, e) => h(e.details.contextType)),
      onUnsubscribe: legacy("unsubscribe", (h, e) => h(e.details.contextType)),
      onDisconnect: legacy("disconnect", (h) => h()),
    });
  }

  // ---- intents -----------------------------------------------------------------------------

  function targetApp(app) {
    if (app === undefined || app === null) {
      return null;
    }
    if (typeof app === "string") {
      return { appId: app }; // the deprecated form: an app by name
    }
    return app;
  }

  function resolution(raiseUuid, p) {
    const r = p.intentResolution;
    let settle;
    const result = new Promise((resolve, reject) => {
      settle = { resolve: resolve, reject: reject };
    });
    result.catch(() => {});
    results.set(raiseUuid, settle);
    return Object.freeze({
      source: r.source,
      intent: r.intent,
      getResult: function () {
        return result;
      },
    });
  }

  // raiseIntent/raiseIntentForContext: the request's uuid is needed for the result, so the
  // request is sent here rather than through `request`.
  function raise(type, payload) {
    const requestUuid = uuid();
    return new Promise((resolve, reject) => {
      const timer = later(() => {
        pending.delete(requestUuid);
        reject(fail("ApiTimeout"));
      }, LONG_TIMEOUT_MS);
      pending.set(requestUuid, {
        resolve: (p) => resolve(resolution(requestUuid, p)),
        reject: reject,
        timer: timer,
      });
      try {
        send({
          type: type,
          payload: payload,
          meta: { requestUuid: requestUuid, timestamp: new Date().toISOString() },
        });
      } catch (e) {
        clearTimeout(timer);
        pending.delete(requestUuid);
        reject(e);
      }
    });
  }

  function intentResult(value) {
    if (value === undefined || value === null) {
      return {};
    }
    if (typeof value === "object" && typeof value.broadcast === "function" && typeof value.id === "string") {
      return { channel: { id: value.id, type: value.type, displayMetadata: value.displayMetadata } };
    }
    if (validContext(value)) {
      return { context: value };
    }
    return null;
  }

  function onIntent(m) {
    const p = m.payload;
    let entry = null;
    for (const l of intentListeners.values()) {
      if (l.intent === p.intent) {
        entry = l;
        break;
      }
    }
    const answer = (ir, error) => {
      const payload = {
        intentEventUuid: m.meta.eventUuid,
        raiseIntentRequestUuid: p.raiseIntentRequestUuid,
        intentResult: ir || {},
      };
      if (error !== undefined) {
        payload.error = String(error);
      }
      request("intentResultRequest", payload).catch((e) => console.error("fdc3: intent result refused", e));
    };
    if (!entry) {
      answer({}, "no listener");
      return;
    }
    Promise.resolve()
      .then(() => entry.handler(p.context, contextMetadata(m)))
      .then(
        (value) => {
          const ir = intentResult(value);
          if (ir === null) {
            answer({}, "the handler returned something that is neither a context nor a channel");
          } else {
            answer(ir);
          }
        },
        (e) => answer({}, e && e.message !== undefined ? e.message : e)
      );
  }

  // ---- messages from the agent -------------------------------------------------------------

  function onChannelChanged(id) {
    currentChannelId = id;
    for (const l of eventListeners.values()) {
      if (l.type === null || l.type === "userChannelChanged") {
        safely("event listener", () => l.handler({ type: "userChannelChanged", details: { currentChannelId: id } }));
      }
    }
    if (id === null) {
      return;
    }
    // Joining hands each listener the channel's current context of its type.
    for (const l of contextListeners.values()) {
      if (l.channelId === null) {
        request("getCurrentContextRequest", { channelId: id, contextType: l.contextType }).then((p) => {
          if (p.context && currentChannelId === id && [...contextListeners.values()].includes(l)) {
            safely("context listener", () => l.handler(p.context, {}));
          }
        }, () => {});
      }
    }
  }

  function receive(m) {
    if (!m || typeof m.type !== "string") {
      return;
    }
    const meta = m.meta || {};
    if (m.type === "raiseIntentResultResponse") {
      const r = results.get(meta.requestUuid);
      if (!r) {
        return;
      }
      results.delete(meta.requestUuid);
      const p = m.payload || {};
      if (p.error) {
        r.reject(fail(p.error));
      } else if (p.intentResult && p.intentResult.context) {
        r.resolve(p.intentResult.context);
      } else if (p.intentResult && p.intentResult.channel) {
        r.resolve(makeChannel(p.intentResult.channel));
      } else {
        r.resolve(undefined);
      }
      return;
    }
    if (m.type.endsWith("Response")) {
      const waiter = pending.get(meta.requestUuid);
      if (!waiter) {
        return;
      }
      pending.delete(meta.requestUuid);
      clearTimeout(waiter.timer);
      const p = m.payload || {};
      if (p.error) {
        waiter.reject(fail(p.error));
        return;
      }
      if (waiter.onAnswer) {
        waiter.onAnswer(p);
      }
      waiter.resolve(p);
      return;
    }
    const p = m.payload || {};
    switch (m.type) {
      case "broadcastEvent": {
        const ctx = p.context;
        const ctxMeta = contextMetadata(m);
        for (const l of [...contextListeners.values()]) {
          const on =
            l.channelId === null
              ? p.channelId === null || p.channelId === currentChannelId
              : l.channelId === p.channelId;
          if (on && (l.contextType === null || l.contextType === ctx.type)) {
            safely("context listener", () => l.handler(ctx, ctxMeta));
          }
        }
        break;
      }
      case "intentEvent":
        onIntent(m);
        break;
      case "channelChangedEvent":
        onChannelChanged(p.currentChannelId !== undefined ? p.currentChannelId : p.newChannelId || null);
        break;
      default: {
        const type = PRIVATE_EVENTS[m.type];
        if (!type) {
          return;
        }
        for (const [id, l] of [...privateListeners.entries()]) {
          if (l.channelId !== p.privateChannelId || (l.type !== null && l.type !== type)) {
            continue;
          }
          if (meta.listenerUUID && meta.listenerUUID !== id) {
            continue;
          }
          const details = type === "disconnect" ? null : { contextType: p.contextType };
          safely("private channel listener", () => l.handler({ type: type, details: details }));
        }
      }
    }
  }
  if (!host.attachFdc3(receive)) {
    return null;
  }

  // ---- the API -----------------------------------------------------------------------------

  const fdc3 = {
    open: function (app, context) {
      const target = targetApp(app);
      if (!target || typeof target.appId !== "string") {
        return Promise.reject(fail("AppNotFound"));
      }
      if (context !== undefined && context !== null && !validContext(context)) {
        return Promise.reject(fail("MalformedContext"));
      }
      const payload = { app: target };
      if (context) {
        payload.context = context;
      }
      return request("openRequest", payload, { timeoutMs: LONG_TIMEOUT_MS }).then((p) => p.appIdentifier);
    },
    findInstances: function (app) {
      return request("findInstancesRequest", { app: targetApp(app) }).then((p) => p.appIdentifiers);
    },
    getAppMetadata: function (app) {
      return request("getAppMetadataRequest", { app: targetApp(app) }).then((p) => p.appMetadata);
    },
    getInfo: function () {
      return request("getInfoRequest", {}).then((p) => p.implementationMetadata);
    },
    findIntent: function (intent, context, resultType) {
      if (context !== undefined && context !== null && !validContext(context)) {
        return Promise.reject(fail("MalformedContext"));
      }
      const payload = { intent: intent };
      if (context) payload.context = context;
      if (resultType) payload.resultType = resultType;
      return request("findIntentRequest", payload).then((p) => p.appIntent);
    },
    findIntentsByContext: function (context, resultType) {
      if (!validContext(context)) {
        return Promise.reject(fail("MalformedContext"));
      }
      const payload = { context: context };
      if (resultType) payload.resultType = resultType;
      return request("findIntentsByContextRequest", payload).then((p) => p.appIntents);
    },
    raiseIntent: function (intent, context, app) {
      if (!validContext(context)) {
        return Promise.reject(fail("MalformedContext"));
      }
      const payload = { intent: intent, context: context };
      const target = targetApp(app);
      if (target) payload.app = target;
      return raise("raiseIntentRequest", payload);
    },
    raiseIntentForContext: function (context, app) {
      if (!validContext(context)) {
        return Promise.reject(fail("MalformedContext"));
      }
      const payload = { context: context };
      const target = targetApp(app);
      if (target) payload.app = target;
      return raise("raiseIntentForContextRequest", payload);
    },
    addIntentListener: function (intent, handler) {
      if (typeof intent !== "string" || typeof handler !== "function") {
        return Promise.reject(fail("InvalidArguments"));
      }
      return withRequestedListener(
        intentListeners,
        "addIntentListenerRequest",
        { intent: intent },
        { intent: intent, handler: handler },
        "intentListenerUnsubscribeRequest"
      );
    },
    broadcast: function (context, metadata) {
      if (!validContext(context)) {
        return Promise.reject(fail("MalformedContext"));
      }
      // Not on a user channel: nothing to do.
      if (currentChannelId === null) {
        return Promise.resolve();
      }
      return broadcastOn(currentChannelId, context, metadata);
    },
    addContextListener: function (a, b) {
      const contextType = typeof a === "function" ? null : a === undefined ? null : a;
      const handler = typeof a === "function" ? a : b;
      return addChannelContextListener(null, a, b).then((l) => {
        // Already on a channel: its current context of this type arrives at once.
        const id = currentChannelId;
        if (id !== null) {
          request("getCurrentContextRequest", { channelId: id, contextType: contextType }).then((p) => {
            if (p.context && currentChannelId === id) {
              safely("context listener", () => handler(p.context, {}));
            }
          }, () => {});
        }
        return l;
      });
    },
    addEventListener: function (type, handler) {
      if (type !== null && type !== "userChannelChanged") {
        return Promise.reject(fail("InvalidArguments"));
      }
      if (typeof handler !== "function") {
        return Promise.reject(fail("InvalidArguments"));
      }
      return withRequestedListener(
        eventListeners,
        "addEventListenerRequest",
        { type: type === null ? null : "USER_CHANNEL_CHANGED" },
        { type: type, handler: handler },
        "eventListenerUnsubscribeRequest"
      );
    },
    getUserChannels: function () {
      return request("getUserChannelsRequest", {}).then((p) => p.userChannels.map(makeChannel));
    },
    joinUserChannel: function (channelId) {
      // The channel is this page's as soon as the agent says yes (its channelChangedEvent,
      // which also hands listeners the channel's context, follows).
      return request("joinUserChannelRequest", { channelId: channelId }, {
        onAnswer: () => {
          currentChannelId = channelId;
        },
      }).then(() => undefined);
    },
    getCurrentChannel: function () {
      return request("getCurrentChannelRequest", {}).then((p) => (p.channel ? makeChannel(p.channel) : null));
    },
    leaveCurrentChannel: function () {
      return request("leaveCurrentChannelRequest", {}, {
        onAnswer: () => {
          currentChannelId = null;
        },
      }).then(() => undefined);
    },
    getOrCreateChannel: function (channelId) {
      if (typeof channelId !== "string" || channelId.length === 0) {
        return Promise.reject(fail("InvalidArguments"));
      }
      return request("getOrCreateChannelRequest", { channelId: channelId }).then((p) => makeChannel(p.channel));
    },
    createPrivateChannel: function () {
      return request("createPrivateChannelRequest", {}).then((p) => makePrivateChannel(p.privateChannel));
    },
  };
  // The deprecated forms still in the 2.2 standard.
  fdc3.getSystemChannels = fdc3.getUserChannels;
  fdc3.joinChannel = fdc3.joinUserChannel;

  // The channel this instance is on (set by a workspace, or kept over a reload), then ready.
  const ready = request("getCurrentChannelRequest", {}).then(
    (p) => {
      if (p.channel && currentChannelId === null) {
        currentChannelId = p.channel.id;
      }
    },
    () => {}
  );
  return { fdc3: Object.freeze(fdc3), ready: ready };
}

  if (typeof window === "undefined") {
    // Node: the native client's module.
    module.exports = { createDesktopAgent: createDesktopAgent };
    return;
  }
  const host = window.__tesseraHost;
  if (!host || window.fdc3) {
    return;
  }
  const made = createDesktopAgent(host);
  if (!made) {
    return;
  }
  Object.defineProperty(window, "fdc3", { value: made.fdc3, enumerable: true, configurable: false });
  made.ready.then(() => window.dispatchEvent(new Event("fdc3Ready")));
})();
