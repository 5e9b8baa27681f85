// A runnable native app on tessera-client: it follows the red channel with the standard FDC3
// API and logs the prices of the instrument picked there. Run it as a native app of a desk:
//
//   { "appId": "follow", "type": "native", "path": "/usr/bin/node",
//     "args": ["/path/to/shell/clients/node/examples/follow.js"] }
//
// with tessera-client installed where node finds it (npm install ./shell/clients/node, or
// NODE_PATH in the app's "env").
"use strict";

const { fromEnv } = require("tessera-client");

async function main() {
  const client = await fromEnv();
  const fdc3 = client.fdc3; // the standard DesktopAgent: existing FDC3 code works unchanged
  let prices = null;
  await fdc3.joinUserChannel("fdc3.channel.1");
  await fdc3.addContextListener("fdc3.instrument", (context, metadata) => {
    const ticker = context.id && context.id.ticker;
    console.error(`${ticker} from ${metadata && metadata.source ? metadata.source.appId : "?"}`);
    if (prices) prices.unsubscribe();
    prices = client.subscribe(`prices.${ticker}`, (quote) => console.log(ticker, quote.last));
  });
  console.error(`closed: ${await client.closed()}`);
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
