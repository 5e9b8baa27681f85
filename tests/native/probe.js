// A native Node app for the end-to-end tests (tests/it/native.rs), on tessera-client: the same
// behaviour as probe.py, with FDC3 through the standard DesktopAgent interface.
"use strict";

const { fromEnv } = require("tessera-client");

async function main() {
  const client = await fromEnv();
  const app = client.app;
  const fdc3 = client.fdc3;
  const report = (data) => client.publish("e2e.from_native", Object.assign({}, data, { app: app }));

  client.subscribe("native.in", (data) => report({ echo: data }));
  client.serve(`${app}.svc`, { double: (data) => data.n * 2 });
  client.onError((e) => report({ refused: e.message }));
  await fdc3.joinUserChannel("fdc3.channel.1");
  await fdc3.addContextListener(null, (context, metadata) => report({ context: context, source: metadata.source }));
  await fdc3.addIntentListener("ViewRisk", (context) => ({ type: "fdc3.risk", ticker: context.id.ticker, by: app }));

  client.subscribe("native.ctl", async (c) => {
    if (c.to !== app) return;
    if (c.cmd === "broadcast") {
      await fdc3.broadcast(c.context);
    } else if (c.cmd === "raise") {
      try {
        const resolution = await fdc3.raiseIntent(c.intent, c.context, c.app ? { appId: c.app } : undefined);
        report({ raised: await resolution.getResult(), by: resolution.source });
      } catch (e) {
        report({ raiseError: String(e.message || e) });
      }
    } else if (c.cmd === "request") {
      report({ requested: await client.request(c.service, c.action, c.data) });
    } else if (c.cmd === "crash") {
      process.exit(3);
    }
  });
  report({ ready: true });
  console.error(`closed: ${await client.closed()}`);
  process.exit(0);
}

main().catch((e) => {
  console.error(`probe.js: ${e.message || e}`);
  process.exit(1);
});
