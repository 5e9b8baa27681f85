//! A runnable native app on `tessera-client`: it follows the red channel and, for each
//! instrument picked there, publishes a quote request on the bus and answers `ViewRisk` with a
//! made-up figure. Run it as a native app of a desk:
//!
//! ```json
//! { "appId": "echo", "type": "native", "path": "/path/to/target/debug/examples/instrument_echo",
//!   "interop": { "intents": { "listensFor": { "ViewRisk": { "contexts": ["fdc3.instrument"] } } } } }
//! ```
//!
//! (`cargo build --example instrument_echo -p tessera-client`), with a policy that lets it
//! publish on `quotes.#`.

use serde_json::json;
use tessera_client::Client;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::from_env().await?;
    let fdc3 = client.fdc3();
    fdc3.join_user_channel("fdc3.channel.1").await?;
    let mut instruments = fdc3.add_context_listener(None, Some("fdc3.instrument")).await?;
    let mut intents = fdc3.add_intent_listener("ViewRisk").await?;
    eprintln!("{} (instance {}) is following the red channel", client.app(), client.instance());
    loop {
        tokio::select! {
            Some((context, meta)) = instruments.recv() => {
                let ticker = context["id"]["ticker"].as_str().unwrap_or("?").to_owned();
                eprintln!("{ticker} from {}", meta["source"]["appId"]);
                client.publish(&format!("quotes.request.{ticker}"), &json!({ "ticker": ticker })).await?;
            }
            Some(event) = intents.next() => {
                let ticker = event.context["id"]["ticker"].clone();
                event.respond(Ok(Some(json!({ "type": "fdc3.risk", "ticker": ticker, "var95": 12_500 })))).await?;
            }
            why = client.closed() => {
                eprintln!("the shell closed the connection: {why}");
                return Ok(());
            }
        }
    }
}
