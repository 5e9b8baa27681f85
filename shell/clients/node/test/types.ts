// Compiled by `npm run typecheck` (tsc --noEmit): the client's agent is the standard interface,
// so code written against @finos/fdc3 takes it unchanged.
import type { Channel, Context, DesktopAgent, Listener } from "@finos/fdc3";
import { fromEnv } from "../index";

async function existingFdc3Code(fdc3: DesktopAgent): Promise<Listener> {
  const instrument: Context = { type: "fdc3.instrument", id: { ticker: "MSFT" } };
  await fdc3.joinUserChannel("fdc3.channel.1");
  await fdc3.broadcast(instrument);
  const channel: Channel = await fdc3.getOrCreateChannel("desk.orders");
  await channel.broadcast(instrument);
  const resolution = await fdc3.raiseIntent("ViewChart", instrument);
  await resolution.getResult();
  return fdc3.addContextListener("fdc3.instrument", (context) => console.log(context.id));
}

async function main(): Promise<void> {
  const client = await fromEnv();
  const agent: DesktopAgent = client.fdc3;
  await existingFdc3Code(agent);
  client.subscribe("prices.#", (data, meta) => console.log(meta.topic, data));
  const doubled: number = await client.request("svc", "double", { n: 2 });
  console.log(doubled);
}

void main;
