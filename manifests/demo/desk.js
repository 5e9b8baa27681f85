// Shared by the demo desk's apps: the instrument universe, a seeded random generator, number
// and time formatting, FDC3 context helpers, and safe access to window.fdc3 and the Tessera bus
// (each page also works, inertly, when opened outside Tessera).
(function () {
  "use strict";

  // The desk's universe. `close` is the previous close (the reference for change), `vol` the
  // standard deviation of one second's return in the simulation (exaggerated so charts move).
  const INSTRUMENTS = [
    { ticker: "AAPL", name: "Apple Inc.", sector: "Technology", peer: "tech", close: 227.48, vol: 0.00045,
      topics: ["iPhone", "Services", "wearables", "App Store"] },
    { ticker: "MSFT", name: "Microsoft Corp.", sector: "Technology", peer: "software", close: 415.2, vol: 0.0004,
      topics: ["Azure", "cloud", "Office", "AI tooling"] },
    { ticker: "NVDA", name: "NVIDIA Corp.", sector: "Semiconductors", peer: "chip", close: 131.9, vol: 0.0008,
      topics: ["data-center", "GPU", "networking", "AI accelerator"] },
    { ticker: "AMZN", name: "Amazon.com Inc.", sector: "Consumer", peer: "retail", close: 186.3, vol: 0.0005,
      topics: ["AWS", "retail", "advertising", "logistics"] },
    { ticker: "GOOGL", name: "Alphabet Inc. Cl A", sector: "Communication", peer: "internet", close: 164.8, vol: 0.0005,
      topics: ["Search", "Cloud", "YouTube", "advertising"] },
    { ticker: "META", name: "Meta Platforms Inc.", sector: "Communication", peer: "internet", close: 563.1, vol: 0.0006,
      topics: ["advertising", "Reality Labs", "messaging", "AI infrastructure"] },
    { ticker: "TSLA", name: "Tesla Inc.", sector: "Automotive", peer: "auto", close: 251.4, vol: 0.0009,
      topics: ["EV", "energy storage", "autonomy", "charging"] },
    { ticker: "JPM", name: "JPMorgan Chase & Co.", sector: "Financials", peer: "bank", close: 209.75, vol: 0.00035,
      topics: ["investment banking", "trading", "consumer banking", "payments"] },
  ];
  const BY_TICKER = new Map(INSTRUMENTS.map((i) => [i.ticker, i]));

  // FNV-1a: a stable 32-bit hash of a string, to seed generators per ticker.
  function hash(text) {
    let h = 0x811c9dc5;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    return h >>> 0;
  }

  // mulberry32: a small, fast, seeded generator of numbers in [0, 1).
  function rng(seed) {
    let a = (typeof seed === "string" ? hash(seed) : seed) >>> 0;
    const next = function () {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    next.gauss = function () {
      const u = Math.max(next(), 1e-12);
      const v = next();
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    };
    next.pick = (list) => list[Math.floor(next() * list.length)];
    next.int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1));
    return next;
  }

  // An instrument we know, or a plausible stand-in for one we do not (a context from elsewhere).
  function instrument(ticker, name) {
    const t = String(ticker || "").toUpperCase();
    const known = BY_TICKER.get(t);
    if (known) {
      return known;
    }
    const r = rng("unknown:" + t);
    return { ticker: t, name: name || t, sector: "Equities", peer: "large-cap", close: +(20 + r() * 380).toFixed(2), vol: 0.0005,
             topics: ["core business", "services", "international", "operations"], unknown: true };
  }

  // Today's key (YYYY-MM-DD, local), for seeds that change once a day.
  function dayKey(d) {
    const x = d || new Date();
    return x.getFullYear() + "-" + String(x.getMonth() + 1).padStart(2, "0") + "-" + String(x.getDate()).padStart(2, "0");
  }

  // ---- formatting ---------------------------------------------------------------------------

  const px2 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const fmt = {
    px: (n) => (typeof n === "number" && isFinite(n) ? px2.format(n) : "\u2014"),
    qty: (n) => (typeof n === "number" && isFinite(n) ? int.format(n) : "\u2014"),
    signed: (n, digits) => {
      if (typeof n !== "number" || !isFinite(n)) return "\u2014";
      const s = Math.abs(n).toFixed(digits === undefined ? 2 : digits);
      return (n > 0 ? "+" : n < 0 ? "\u2212" : "") + s;
    },
    pct: (n) => (typeof n !== "number" || !isFinite(n) ? "\u2014" : fmt.signed(n, 2) + "%"),
    // 1.2K, 3.4M: for volumes and notionals.
    compact: (n) => {
      if (typeof n !== "number" || !isFinite(n)) return "\u2014";
      const a = Math.abs(n);
      if (a >= 1e9) return (n / 1e9).toFixed(2) + "B";
      if (a >= 1e6) return (n / 1e6).toFixed(2) + "M";
      if (a >= 1e4) return (n / 1e3).toFixed(1) + "K";
      return int.format(n);
    },
    time: (t) => {
      const d = t instanceof Date ? t : new Date(t);
      return [d.getHours(), d.getMinutes(), d.getSeconds()].map((x) => String(x).padStart(2, "0")).join(":");
    },
    hm: (t) => {
      const d = t instanceof Date ? t : new Date(t);
      return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
    },
    ms: (t) => {
      const d = t instanceof Date ? t : new Date(t);
      return fmt.time(d) + "." + String(d.getMilliseconds()).padStart(3, "0");
    },
    dir: (n) => (n > 0 ? "up" : n < 0 ? "down" : "flat"),
  };

  // ---- FDC3 ---------------------------------------------------------------------------------

  const hasFdc3 = () => typeof window.fdc3 === "object" && window.fdc3 !== null;
  const bus = () => (window.tessera && window.tessera.bus ? window.tessera.bus : null);

  function instrumentContext(ticker, name) {
    const i = instrument(ticker, name);
    return { type: "fdc3.instrument", id: { ticker: i.ticker }, name: i.name };
  }

  // The ticker of an instrument context (or of an order's product), upper case; null if none.
  function tickerOf(context) {
    if (!context || typeof context !== "object") return null;
    const id = context.id || {};
    const t = id.ticker || id.RIC || id.BBG || id.ISIN;
    return typeof t === "string" && t.length > 0 ? t.toUpperCase().split(/[ .]/)[0] : null;
  }

  // An Error's message, for status lines.
  const why = (e) => (e && e.message ? e.message : String(e));

  // The current user channel's display name, or null, and a subscription to its changes.
  async function watchChannel(onChange) {
    if (!hasFdc3()) {
      onChange(null);
      return;
    }
    const show = async () => {
      try {
        const c = await window.fdc3.getCurrentChannel();
        onChange(c ? { id: c.id, name: (c.displayMetadata && c.displayMetadata.name) || c.id,
                       color: c.displayMetadata && c.displayMetadata.color } : null);
      } catch (e) {
        onChange(null);
      }
    };
    await show();
    try {
      await window.fdc3.addEventListener("userChannelChanged", show);
    } catch (e) {
      console.warn("desk: cannot watch the user channel", e);
    }
  }

  // A session-unique order id: T + HHMMSS + a sequence number.
  let orderSeq = 0;
  function orderId() {
    const d = new Date();
    orderSeq += 1;
    return "T" + [d.getHours(), d.getMinutes(), d.getSeconds()].map((x) => String(x).padStart(2, "0")).join("") +
      "-" + String(orderSeq).padStart(3, "0");
  }

  window.desk = Object.freeze({
    INSTRUMENTS, instrument, hash, rng, dayKey, fmt, hasFdc3, bus, instrumentContext, tickerOf, why,
    watchChannel, orderId,
  });
})();
