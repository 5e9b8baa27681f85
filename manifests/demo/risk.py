#!/usr/bin/env python3
"""The demo desk's risk engine: a native Python app on tessera_client, started by the shell from
the manifest like any app (same identity, permissions and audit as the web tiles).

It follows the desk as a risk process would: the prices the watchlist publishes (``prices.#``),
the fills on the ``orders`` app channel (positions), and the instrument the trader picks on the
red channel (the focus). Once a second, when something changed, it publishes ``risk.summary``
(net and gross exposure, P&L against the average price, and a one-day 95% VaR from each
instrument's observed volatility), which the blotter shows. Positions are kept with the
workspace, so a restart does not lose the day. Run outside the shell it says so and stops."""

import asyncio
import math
import sys
import time
from pathlib import Path

try:
    from tessera_client import Client, Fdc3Error
except ImportError:  # run from a source checkout, without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shell" / "clients" / "python" / "src"))
    from tessera_client import Client, Fdc3Error

Z95 = 1.645
SECONDS_PER_DAY = 6.5 * 3600


class Book:
    """Positions, marks and volatility estimates."""

    def __init__(self, saved):
        self.positions = {t: dict(p) for t, p in (saved or {}).get("positions", {}).items()}
        self.marks = {}
        self.variance = {}  # EWMA of squared one-second returns, per ticker
        self.last_tick = {}
        self.seen_fills = set((saved or {}).get("fills", []))
        self.focus = (saved or {}).get("focus")
        self.changed = True

    def on_price(self, quote):
        ticker, last = quote.get("symbol"), quote.get("last")
        if not ticker or not isinstance(last, (int, float)) or last <= 0:
            return
        now = time.monotonic()
        prev, at = self.marks.get(ticker), self.last_tick.get(ticker)
        if prev and at and now > at:
            r = math.log(last / prev) / math.sqrt(max(now - at, 0.2))
            self.variance[ticker] = 0.94 * self.variance.get(ticker, r * r) + 0.06 * r * r
        self.marks[ticker], self.last_tick[ticker] = last, now
        self.changed = self.changed or ticker in self.positions

    def on_order(self, order):
        d = order.get("details") or {}
        oid = (order.get("id") or {}).get("orderId")
        if d.get("status") != "filled" or not oid or oid in self.seen_fills:
            return
        ticker = ((d.get("product") or {}).get("id") or {}).get("ticker")
        qty = d.get("filledQuantity") or d.get("quantity") or 0
        px = d.get("fillPrice") or d.get("price") or 0
        if not ticker or qty <= 0 or px <= 0:
            return
        self.seen_fills.add(oid)
        signed = qty if d.get("side") == "buy" else -qty
        p = self.positions.setdefault(ticker, {"qty": 0, "avg": 0.0})
        if p["qty"] == 0 or (p["qty"] > 0) == (signed > 0):
            p["avg"] = (p["avg"] * abs(p["qty"]) + px * abs(signed)) / (abs(p["qty"]) + abs(signed))
        elif abs(signed) > abs(p["qty"]):
            p["avg"] = px
        p["qty"] += signed
        self.changed = True

    def var95(self, ticker, notional):
        sigma = math.sqrt(self.variance.get(ticker, 0.0005 ** 2))
        return Z95 * abs(notional) * sigma * math.sqrt(SECONDS_PER_DAY)

    def line(self, ticker):
        p = self.positions.get(ticker, {"qty": 0, "avg": 0.0})
        mark = self.marks.get(ticker, p["avg"])
        notional = p["qty"] * mark
        return {
            "ticker": ticker,
            "position": p["qty"],
            "avgPx": round(p["avg"], 4),
            "mark": mark,
            "notional": round(notional, 2),
            "pnl": round(p["qty"] * (mark - p["avg"]), 2),
            "var95": round(self.var95(ticker, notional), 2),
        }

    def summary(self):
        lines = [self.line(t) for t in sorted(self.positions) if self.positions[t]["qty"] != 0]
        return {
            "positions": lines,
            "net": round(sum(l["notional"] for l in lines), 2),
            "gross": round(sum(abs(l["notional"]) for l in lines), 2),
            "pnl": round(sum(l["pnl"] for l in lines), 2),
            # Undiversified: the sum of the lines' VaR, an upper bound.
            "var95": round(sum(l["var95"] for l in lines), 2),
            "focus": self.line(self.focus) if self.focus else None,
            "engine": "risk.py (native Python)",
        }

    def state(self):
        return {"positions": self.positions, "fills": sorted(self.seen_fills)[-500:], "focus": self.focus}


async def main():
    client = await Client.from_env()
    book = Book(client.state)
    await client.subscribe("prices.#", lambda m: book.on_price(m.data))

    def on_instrument(context, metadata):
        ticker = (context.get("id") or {}).get("ticker")
        if ticker and ticker != book.focus:
            book.focus, book.changed = ticker, True

    await client.fdc3.join_user_channel("fdc3.channel.1")
    await client.fdc3.add_context_listener("fdc3.instrument", on_instrument)
    try:
        orders = await client.fdc3.get_or_create_channel("orders")
        await orders.add_context_listener("fdc3.order", lambda o, m: book.on_order(o))
    except Fdc3Error as e:
        print(f"risk: not following the orders channel: {e}", file=sys.stderr)
    await client.serve("risk", {"position": lambda data, caller: book.line(str((data or {}).get("ticker", "")).upper())})

    async def publish_forever():
        while True:
            if book.changed:
                book.changed = False
                await client.publish("risk.summary", book.summary())
                await client.save_state(book.state())
            await asyncio.sleep(1.0)

    publishing = asyncio.ensure_future(publish_forever())
    why = await client.wait_closed()
    publishing.cancel()
    print(f"risk: the shell closed the connection: {why}", file=sys.stderr)


if __name__ == "__main__":
    if "TESSERA_LAUNCH_TOKEN" not in __import__("os").environ:
        sys.exit("risk.py is a native app of the demo desk: the Tessera shell starts it (manifests/demo.json)")
    asyncio.run(main())
