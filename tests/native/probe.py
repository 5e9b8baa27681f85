"""A native Python app for the end-to-end tests (tests/it/native.rs), on tessera_client: launched
by the shell from a manifest, it echoes ``native.in`` on ``e2e.from_native``, serves
``<app>.svc``, reports the contexts it sees on the red channel, answers the intent ``ViewRisk``,
and runs the commands sent to it on ``native.ctl`` (``{"to": <app>, "cmd": ...}``)."""

import asyncio
import sys

from tessera_client import Client, Fdc3Error


async def main() -> None:
    client = await Client.from_env()
    app = client.app

    async def report(data):
        await client.publish("e2e.from_native", dict(data, app=app))

    await client.subscribe("native.in", lambda m: report({"echo": m.data}))
    await client.serve(f"{app}.svc", {"double": lambda data, caller: data["n"] * 2})
    client.on_error(lambda r: report({"refused": r.context, "error": r.error}))
    await client.fdc3.join_user_channel("fdc3.channel.1")
    await client.fdc3.add_context_listener(None, lambda c, m: report({"context": c, "source": m["source"]}))
    await client.fdc3.add_intent_listener(
        "ViewRisk", lambda c, m: {"type": "fdc3.risk", "ticker": c["id"]["ticker"], "by": app}
    )

    async def command(m):
        c = m.data
        if c.get("to") != app:
            return
        if c["cmd"] == "broadcast":
            await client.fdc3.broadcast(c["context"])
        elif c["cmd"] == "raise":
            try:
                resolution = await client.fdc3.raise_intent(c["intent"], c["context"], c.get("app"))
                await report({"raised": await resolution.get_result(), "by": resolution.source})
            except Fdc3Error as e:
                await report({"raiseError": str(e)})
        elif c["cmd"] == "request":
            await report({"requested": await client.request(c["service"], c["action"], c["data"])})
        elif c["cmd"] == "crash":
            sys.exit(3)

    await client.subscribe("native.ctl", command)
    await report({"ready": True})
    print(f"closed: {await client.wait_closed()}", file=sys.stderr)


asyncio.run(main())
