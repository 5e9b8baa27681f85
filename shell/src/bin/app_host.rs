//! `tessera-app-host`: the per-app child process that will host one web app's WebView.
//!
//! Until the app-process issue lands it only reports its version, so packaging and the
//! supervisor can already find it next to `tessera`.

#![expect(clippy::print_stdout, reason = "printing the version is this placeholder's whole job")]

fn main() {
    println!("tessera-app-host {}", env!("CARGO_PKG_VERSION"));
}
