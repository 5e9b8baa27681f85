//! The command-line grammar. Exit codes: 0 ok, 1 failure, 2 bad usage or bad input.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Tessera: a native desktop interop shell for trading desks.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Runs the shell: the window, the broker, and an app host per app (the default command).
    Run(RunArgs),
    /// Drives a running shell through its control socket.
    Ctl(CtlArgs),
    /// Measures parts of Tessera on this machine.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Inspects and loads a profile's message journal.
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Stores and reads secrets in a profile's encrypted vault.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Verifies and exports the profile's tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// For IT: signing keys, signed App Directory records and signed manifests.
    #[command(subcommand)]
    Sign(SignCommand),
    /// Checks for, installs and rolls back updates of an installed build.
    #[command(subcommand)]
    Update(UpdateCommand),
    /// For IT: packs, signs and publishes a release into an update feed directory.
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// For IT: what the NATS cluster needs for the desks the admin policy links.
    #[command(subcommand)]
    Link(LinkCommand),
    /// For IT: what to send when something went wrong.
    #[command(subcommand)]
    Diag(DiagCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum DiagCommand {
    /// Writes a tar.gz with the versions, the running shell's health, apps and link, the
    /// effective admin policy (signature checked, secrets redacted), recent logs, the latest
    /// crash reports and the update history, and prints its path.
    Bundle(DiagBundleArgs),
    /// Checks crash reporting: panics on purpose, leaving a crash report in the profile.
    Panic {
        #[command(flatten)]
        profile: ProfileArg,
    },
}

#[derive(Debug, Args)]
pub(crate) struct DiagBundleArgs {
    /// Where to write it (default: tessera-diag-TIME.tar.gz here).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) profile: ProfileArg,
    #[command(flatten)]
    pub(crate) socket: CtlSocketArg,
    /// The admin policy (default: TESSERA_POLICY, else /etc/tessera/policy.json).
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
    /// The policy's signing rules (default: TESSERA_POLICY_TRUST, else
    /// /etc/tessera/policy-trust.json).
    #[arg(long, value_name = "FILE", env = "TESSERA_POLICY_TRUST")]
    pub(crate) policy_trust: Option<PathBuf>,
    /// The install root whose update history to take (default: the one this binary belongs
    /// to, or TESSERA_INSTALL_ROOT).
    #[arg(long, value_name = "DIR")]
    pub(crate) root: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum LinkCommand {
    /// Prints a nats-server `authorization` block: a user per desk (its password from the
    /// environment variable `TESSERA_LINK_<DESK>`) allowed only what the policy's link groups
    /// share, so the server holds each desk to its groups too.
    NatsAuth {
        /// The admin policy with the `link` section (default: TESSERA_POLICY, else
        /// /etc/tessera/policy.json).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// A desk to write a user for (repeat; default: every desk the groups name).
        #[arg(long = "desk", value_name = "NAME")]
        desks: Vec<String>,
    },
    /// Makes this desk an NKey: keeps its seed in the profile's vault (purpose `link`, for the
    /// policy's `nkeySecret`) and prints its public key for the servers' configuration.
    Nkey {
        #[command(flatten)]
        args: VaultArgs,
        /// The vault entry to keep the seed under.
        #[arg(long, default_value = "nkey")]
        id: String,
    },
}

/// What every `update` command needs.
#[derive(Debug, Args)]
pub(crate) struct UpdateArgs {
    /// The install root (default: the one this binary belongs to, or TESSERA_INSTALL_ROOT).
    #[arg(long, value_name = "DIR")]
    pub(crate) root: Option<PathBuf>,
    /// The admin policy with the `update` and `signing` sections (default: TESSERA_POLICY, else
    /// /etc/tessera/policy.json).
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UpdateCommand {
    /// Fetches the channel's feed and says whether there is an update for this desk.
    Check {
        #[command(flatten)]
        args: UpdateArgs,
    },
    /// Downloads, verifies and stages the update; the next start runs it on probation (with
    /// --now, it is put on probation at once).
    Apply {
        #[command(flatten)]
        args: UpdateArgs,
        /// Put the new build on probation now: the next start runs it, and it becomes the
        /// installed build once it has started healthy.
        #[arg(long)]
        now: bool,
    },
    /// What is installed, kept, staged, on probation, downloading, and the last failure.
    Status {
        #[command(flatten)]
        args: UpdateArgs,
    },
    /// Goes back to the previous build, or gives up a build on probation (the version left is
    /// not installed again).
    Rollback {
        #[command(flatten)]
        args: UpdateArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReleaseCommand {
    /// Packs the binaries and assets into a release archive, signs it (zipsign, ed25519) and
    /// writes the channel's signed feed: FEED_DIR/archives/NAME.tar.gz, then FEED_DIR/CHANNEL.json.
    Publish {
        /// The release's version (default: this binary's).
        #[arg(long = "release-version", value_name = "VERSION")]
        version: Option<String>,
        /// Where `tessera` and `tessera-app-host` are (default: beside this binary).
        #[arg(long, value_name = "DIR")]
        bin_dir: Option<PathBuf>,
        /// Where `manifests/` and `assets/` are (default: the installed share/tessera, or the
        /// source tree).
        #[arg(long, value_name = "DIR")]
        share_dir: Option<PathBuf>,
        /// The feed directory (served as --base-url).
        #[arg(long, value_name = "DIR")]
        feed_dir: PathBuf,
        /// The URL the feed directory is served at.
        #[arg(long)]
        base_url: String,
        /// The channel (stable, canary, ...).
        #[arg(long, default_value = "stable")]
        channel: String,
        /// Percent of desks that get it now (0-100).
        #[arg(long, default_value_t = 100)]
        rollout: u8,
        /// The oldest version that may update to it directly.
        #[arg(long)]
        minimum_version: Option<String>,
        /// When the feed stops being valid (RFC 3339 UTC; default: in 30 days).
        #[arg(long)]
        expires: Option<String>,
        /// The secret key file (`tessera sign keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The key's id, as the admin policy's trustedKeys name it.
        #[arg(long)]
        key_id: String,
        /// gzip level (0-9).
        #[arg(long, default_value_t = 6)]
        level: u32,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SignCommand {
    /// Makes a signing key: the secret goes to FILE (0600), the public key (for the admin
    /// policy's `trustedKeys`) to stdout.
    Keygen {
        /// Where to write the secret key (64 hex digits).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Signs App Directory records read from stdin (a list, or `{"applications": [...]}`); the
    /// signed directory goes to stdout.
    Records {
        /// The secret key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The key's id, as the admin policy names it.
        #[arg(long)]
        key_id: String,
        /// When the signatures stop being accepted (RFC 3339 UTC).
        #[arg(long)]
        expires: String,
    },
    /// Signs a platform manifest or an admin policy file: writes FILE.sig beside it.
    #[command(alias = "manifest")]
    File {
        /// The manifest.
        file: PathBuf,
        /// The secret key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The key's id.
        #[arg(long)]
        key_id: String,
        /// When the signature stops being accepted (RFC 3339 UTC).
        #[arg(long)]
        expires: String,
    },
    /// Issues a credential for a native app started outside the shell: makes the app's own
    /// key (its secret to APP_KEY, 0600, for the app alone) and prints the credential (IT's
    /// signature over the app's id and the app's public key) to stdout.
    Credential {
        /// The manifest app it is for.
        #[arg(long)]
        app: String,
        /// IT's secret key file (a key the admin policy trusts).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// IT's key's id.
        #[arg(long)]
        key_id: String,
        /// When the credential stops being accepted (RFC 3339 UTC).
        #[arg(long)]
        expires: String,
        /// Where to write the app's secret key (64 hex digits); it must not exist yet.
        #[arg(long, value_name = "FILE")]
        app_key_out: PathBuf,
    },
}

/// How `audit export` writes entries.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header line.
    Csv,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Recomputes the Merkle tree from every entry and checks it against the signed heads;
    /// exits 1 if any entry was changed, deleted, reordered or truncated.
    Verify {
        #[command(flatten)]
        profile: ProfileArg,
        /// A head IT collected (JSON, or the heads.jsonl file: its last line counts).
        #[arg(long, value_name = "FILE")]
        head: Option<std::path::PathBuf>,
        /// The public key to check signatures with (64 hex digits, or a file holding them);
        /// default: the one recorded in the profile.
        #[arg(long, value_name = "KEY")]
        public_key: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Prints entries, oldest first.
    Export {
        #[command(flatten)]
        profile: ProfileArg,
        /// Only entries at or after this time (RFC 3339 UTC, or microseconds since the epoch).
        #[arg(long)]
        since: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
    },
    /// Appends entries, printing each index as soon as it is durable (scripts and crash tests).
    Append {
        #[command(flatten)]
        vault: VaultArgs,
        /// Who acted.
        #[arg(long)]
        actor: String,
        /// The app concerned.
        #[arg(long)]
        app: Option<String>,
        /// What was done.
        #[arg(long)]
        action: String,
        /// What it was done to.
        #[arg(long)]
        object: String,
        /// The outcome.
        #[arg(long)]
        decision: String,
        /// Extra details, as JSON.
        #[arg(long)]
        details: Option<String>,
        /// How many identical entries to append.
        #[arg(long, default_value_t = 1)]
        count: u64,
    },
    /// Signs and records a tree head now, and prints it.
    Head {
        #[command(flatten)]
        vault: VaultArgs,
    },
}

/// Which OS keyring holds the vault's master keys.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub(crate) enum KeyringArg {
    /// The freedesktop Secret Service (gnome-keyring) on the session bus.
    #[default]
    SecretService,
    /// The kernel's keyutils session keyring (does not survive a reboot).
    Keyutils,
}

#[derive(Debug, Args)]
pub(crate) struct VaultArgs {
    #[command(flatten)]
    pub(crate) profile: ProfileArg,
    /// Keyring for the master keys.
    #[arg(long, value_enum, default_value = "secret-service", env = "TESSERA_KEYRING")]
    pub(crate) keyring: KeyringArg,
    /// Keep the master keys in this file instead of a keyring (what an admin policy that names
    /// a key file does; a warning is logged).
    #[arg(long, value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum VaultCommand {
    /// Encrypts the secret read from stdin and stores it.
    Put {
        #[command(flatten)]
        args: VaultArgs,
        /// What the secret is for (each purpose has its own derived key).
        #[arg(long)]
        purpose: String,
        /// Its id within the purpose.
        #[arg(long)]
        id: String,
    },
    /// Prints a secret to stdout; exits 1 if there is none.
    Get {
        #[command(flatten)]
        args: VaultArgs,
        /// Its purpose.
        #[arg(long)]
        purpose: String,
        /// Its id.
        #[arg(long)]
        id: String,
    },
    /// Lists the ids stored for a purpose.
    List {
        #[command(flatten)]
        args: VaultArgs,
        /// The purpose.
        #[arg(long)]
        purpose: String,
    },
    /// Deletes a secret; exits 1 if there was none.
    Delete {
        #[command(flatten)]
        args: VaultArgs,
        /// Its purpose.
        #[arg(long)]
        purpose: String,
        /// Its id.
        #[arg(long)]
        id: String,
    },
    /// Rotates to a new master key and re-encrypts every secret (finishes an interrupted one).
    Rotate {
        #[command(flatten)]
        args: VaultArgs,
    },
    /// Decrypts every secret; fails on the first that does not authenticate.
    Verify {
        #[command(flatten)]
        args: VaultArgs,
    },
    /// Stores `ID<TAB>SECRET` lines from stdin.
    Import {
        #[command(flatten)]
        args: VaultArgs,
        /// Their purpose.
        #[arg(long)]
        purpose: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Routing and delivery through the in-process broker.
    Broker(BrokerBenchArgs),
    /// Durable publishes through the journal: group commit against one commit per message.
    Journal(JournalBenchArgs),
    /// App-host processes talking through the real transport and broker.
    Ipc(IpcBenchArgs),
    /// The shell window's frame cost while the layout changes, and its idle cost (needs X).
    Frame(FrameBenchArgs),
    /// Native client processes through the endpoint and broker, with the NATS benchmark's
    /// workload (publishers, wildcard subscribers), beside nats-server with `--against nats`.
    Endpoint(EndpointBenchArgs),
    /// One client process of `bench endpoint` (started by it).
    #[command(hide = true)]
    EndpointClient(EndpointClientArgs),
    /// A page flooding the bus in a real shell: the other pages' delivery latency, quiet and
    /// flooded, in the same run (needs a display).
    Flood(FloodBenchArgs),
    /// Desks linked over a real three-node NATS cluster: simulated desks (the real link over
    /// a broker each, not whole shells) with a mix of bus messages, channel broadcasts and
    /// intents; delivered msgs/s and cross-desk latency at each number of desks.
    Bridge(BridgeBenchArgs),
    /// The memory of a desk of N pages once painted (PSS of every process, by kind) and its CPU
    /// while idle; beside Chromium `--app` windows of the same pages with `--against chromium`
    /// (needs a display).
    Memory(MemoryBenchArgs),
    /// From starting a desk of N pages to every page painted, cold and warm; beside Chromium
    /// with `--against chromium` (needs a display).
    Startup(StartupBenchArgs),
    /// Round trips between two real pages over the bus and FDC3 (user channel, app channel,
    /// intent with a result), timed by their hosts: p50/p99/p99.9, round trip and one way
    /// (needs a display).
    E2e(E2eBenchArgs),
}

/// The other desk a desk bench runs the same pages in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AgainstDesk {
    /// Chromium `--app` windows, each page from its own site (the `chromium` package).
    Chromium,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct MemoryBenchArgs {
    /// Apps (pages) on the desk; several (`--apps 6,20`) measure each, and what each app added
    /// between them costs.
    #[arg(long, value_delimiter = ',', default_value = "6", value_parser = clap::value_parser!(usize))]
    pub(crate) apps: Vec<usize>,
    /// Run the same pages in another desk too, in the same run.
    #[arg(long, value_enum)]
    pub(crate) against: Option<AgainstDesk>,
    /// Seconds after every page has painted before memory is read.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) settle_secs: f64,
    /// Seconds over which the idle desk's CPU is measured.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) idle_secs: f64,
    /// Runs (each desk once a run, which goes first alternating).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) runs: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct StartupBenchArgs {
    /// Apps (pages) on the desk.
    #[arg(long, default_value_t = 10)]
    pub(crate) apps: usize,
    /// Run the same pages in another desk too, in the same run.
    #[arg(long, value_enum)]
    pub(crate) against: Option<AgainstDesk>,
    /// Runs (a cold and a warm start of each desk a run, which goes first alternating).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) runs: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct E2eBenchArgs {
    /// Round trips of each kind a run (in 8 blocks, the kinds' blocks alternating).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    pub(crate) rounds: u32,
    /// Runs, each with a shell of its own.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) runs: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct FloodBenchArgs {
    /// Runs, each with a shell of its own.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) runs: u32,
    /// Pings a phase (5 ms apart).
    #[arg(long, default_value_t = 1600, value_parser = clap::value_parser!(u32).range(100..=100_000))]
    pub(crate) pings: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct BridgeBenchArgs {
    /// Numbers of desks to run, one run each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000",
          value_parser = clap::value_parser!(u32).range(1..=5_000))]
    pub(crate) desks: Vec<u32>,
    /// Desks per link group (a team); every desk shares with the others of its group.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub(crate) group_size: u32,
    /// Messages a second each desk sends (the mix: 6 in 10 on the bus, a fifth of them durable;
    /// 3 channel broadcasts; 1 intent raised at another desk of its group).
    #[arg(long, default_value_t = 2.0)]
    pub(crate) rate: f64,
    /// Seconds each run sends for.
    #[arg(long, default_value_t = 10)]
    pub(crate) secs: u64,
    /// Replicas of each group's stream (at most 3: the cluster's size).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub(crate) replicas: u8,
    /// The nats-server program.
    #[arg(long, default_value = "nats-server")]
    pub(crate) nats_server: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct EndpointBenchArgs {
    /// Publisher processes.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) publishers: u32,
    /// Subscriber processes, each on the wildcard `bench.data.*` (every message reaches each).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) subscribers: u32,
    /// Messages published in all in the flat-out pass.
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub(crate) messages: u32,
    /// Payload size in bytes (at least 40: the payload is JSON carrying its send time).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(40..=65_536))]
    pub(crate) payload: u32,
    /// Messages a second, in all, in the latency pass.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) rate: u32,
    /// Seconds the latency pass lasts.
    #[arg(long, default_value_t = 3.0)]
    pub(crate) secs: f64,
    /// Run the identical workload against a local nats-server in the same run.
    #[arg(long, value_parser = ["nats"])]
    pub(crate) against: Option<String>,
    /// The nats-server program (for `--against nats`).
    #[arg(long, default_value = "nats-server")]
    pub(crate) nats_server: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct EndpointClientArgs {
    /// `tessera` (the endpoint, from the launch token in the environment) or `nats`.
    #[arg(long, value_parser = ["tessera", "nats"])]
    pub(crate) system: String,
    /// `pub` or `sub`.
    #[arg(long, value_parser = ["pub", "sub"])]
    pub(crate) role: String,
    /// This client's number.
    #[arg(long, default_value_t = 0)]
    pub(crate) index: u32,
    /// Messages to publish (a publisher) or to expect (a subscriber).
    #[arg(long)]
    pub(crate) count: u64,
    /// A publisher's messages a second (0: flat out).
    #[arg(long, default_value_t = 0)]
    pub(crate) rate: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 64)]
    pub(crate) payload: usize,
    /// The NATS server's URL.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub(crate) nats_url: String,
    /// A subscriber reads each message's send time and measures the latency (the paced pass);
    /// without it, it only counts (the flat-out pass).
    #[arg(long)]
    pub(crate) latency: bool,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct FrameBenchArgs {
    /// Tiles in the layout.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) tiles: u32,
    /// Layout changes, at 60 a second.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) changes: u32,
    /// Seconds of idling measured after the changes.
    #[arg(long, default_value_t = 3.0)]
    pub(crate) idle_secs: f64,
    /// Window width in physical pixels.
    #[arg(long, default_value_t = 1920)]
    pub(crate) width: u32,
    /// Window height in physical pixels.
    #[arg(long, default_value_t = 1080)]
    pub(crate) height: u32,
    /// Clear and present each frame without drawing anything: the floor of a frame's cost here.
    #[arg(long)]
    pub(crate) present_only: bool,
    /// Draw every frame whole, as if everything changed (without a GPU, a frame otherwise
    /// draws only the areas that changed): what the whole frame costs.
    #[arg(long)]
    pub(crate) whole_frames: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct IpcBenchArgs {
    /// App-host processes.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub(crate) clients: u32,
    /// Messages in all, per pass.
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub(crate) messages: u32,
    /// Payload size in bytes (at least 8; the first 8 carry the send time).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(8..=1_048_576))]
    pub(crate) payload: u32,
    /// Passes each way (tracing off, on) for the cost of traces (0: not measured).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub(crate) trace_passes: u32,
    /// The share of messages traced in the traced passes (spans go to a loopback sink).
    #[arg(long, default_value_t = 0.01)]
    pub(crate) trace_ratio: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args, Default)]
pub(crate) struct ProfileArg {
    /// Profile directory (default: $XDG_DATA_HOME/tessera, else ~/.local/share/tessera).
    #[arg(long, value_name = "DIR")]
    pub(crate) profile: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum JournalCommand {
    /// Counts, sizes and the oldest and newest records.
    Stats {
        #[command(flatten)]
        profile: ProfileArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Prints journalled messages, oldest first: one line each, or JSON lines with --json.
    Replay {
        #[command(flatten)]
        profile: ProfileArg,
        /// First journal sequence number.
        #[arg(long, default_value_t = 1, conflicts_with = "topic")]
        from: u64,
        /// Only this topic, in topic order.
        #[arg(long)]
        topic: Option<String>,
        /// With --topic: first topic sequence number.
        #[arg(long, requires = "topic", conflicts_with = "since")]
        from_topic_seq: Option<u64>,
        /// With --topic: first timestamp, in microseconds since the Unix epoch.
        #[arg(long, requires = "topic")]
        since: Option<u64>,
        /// Most messages to print.
        #[arg(long, default_value_t = u64::MAX)]
        limit: u64,
        /// Print JSON lines (every field, the payload as text or hex).
        #[arg(long)]
        json: bool,
    },
    /// Reads every record and index entry; exits 1 if anything is inconsistent.
    Verify {
        #[command(flatten)]
        profile: ProfileArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Appends durable messages as fast as it can, printing each acknowledged journal sequence
    /// number on its own line as soon as it is on disk (a load tool; crash tests drive it).
    Append {
        #[command(flatten)]
        profile: ProfileArg,
        /// Topic to publish to.
        #[arg(long)]
        topic: String,
        /// Messages to append.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Payload size in bytes.
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(0..=1_048_576))]
        payload: u32,
        /// Also append an audit entry for every 1000 acknowledged messages, signing with a
        /// vault whose master keys are in this key file (crash tests check both logs).
        #[arg(long, value_name = "FILE")]
        audit_key_file: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct JournalBenchArgs {
    /// Durable messages to publish.
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub(crate) messages: u32,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(0..=1_048_576))]
    pub(crate) payload: u32,
    /// Messages in the one-commit-per-message baseline pass.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
    pub(crate) baseline_messages: u32,
    /// Store payloads uncompressed (default: compress those of 1 KiB or more when it pays).
    #[arg(long)]
    pub(crate) no_compress: bool,
    /// Most messages per commit in the group-commit pass (default: the journal's default).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) max_batch: Option<u32>,
    /// Directory for the throw-away profiles (default: the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BrokerBenchArgs {
    /// Subscriptions to install.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) subscriptions: u32,
    /// Messages to publish in the throughput pass (and topics to match).
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub(crate) messages: u32,
    /// Share of subscriptions that use `*` or `#`, from 0 to 1.
    #[arg(long, default_value_t = 0.25, value_parser = ratio)]
    pub(crate) wildcard_ratio: f64,
    /// Latency samples in the paced pass.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(100..=10_000_000))]
    pub(crate) latency_samples: u32,
    /// Seed of the workload generator.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Throughput passes with the broker's metrics off, then on, in turns, to measure what
    /// they cost (0: none).
    #[arg(long, default_value_t = 10)]
    pub(crate) metrics_passes: u32,
    /// Every other pass with the broker's metrics off (to count instructions both ways under
    /// callgrind; see BENCHMARKS.md).
    #[arg(long)]
    pub(crate) no_metrics: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

fn ratio(s: &str) -> Result<f64, String> {
    let r: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&r) { Ok(r) } else { Err(format!("{r} is outside 0..=1")) }
}

/// Where the control socket is.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct CtlSocketArg {
    /// The control socket (default: $XDG_RUNTIME_DIR/tessera/ctl.sock).
    #[arg(long, value_name = "PATH", env = "TESSERA_CTL_SOCKET")]
    pub(crate) ctl_socket: Option<PathBuf>,
}

#[derive(Debug, Args, Default)]
pub(crate) struct RunArgs {
    /// The platform manifest: a file, or an https:// URL (signed as a file is; the last good
    /// copy kept in the profile) (default: the built-in demo desk).
    #[arg(long, value_name = "PATH|URL")]
    pub(crate) manifest: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) profile: ProfileArg,
    #[command(flatten)]
    pub(crate) socket: CtlSocketArg,
    /// Quit after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub(crate) exit_after: Option<f64>,
    /// Save the window as a PNG just before quitting (with --exit-after).
    #[arg(long, value_name = "PATH", requires = "exit_after")]
    pub(crate) screenshot: Option<PathBuf>,
    /// The window's size in physical pixels.
    #[arg(long, value_name = "WxH", default_value = "1280x800", value_parser = parse_size)]
    pub(crate) window_size: (u32, u32),
    /// Memory limit per app host and its web processes, in MiB (an app's manifest may set its own).
    #[arg(long, value_name = "MIB", default_value_t = 2048)]
    pub(crate) memory_limit_mib: u64,
    /// An FDC3 App Directory whose web apps join the manifest's: an appd v2 JSON file, or a
    /// URL answering like `/v2/apps` (kept in the profile for when it cannot be reached).
    /// May be given more than once.
    #[arg(long = "app-directory", value_name = "FILE|URL")]
    pub(crate) app_directories: Vec<String>,
    /// How often App Directory URLs are fetched again, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub(crate) app_directory_refresh: u64,
    /// How often a manifest or policy given as a URL is fetched again, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300, env = "TESSERA_CONFIG_REFRESH")]
    pub(crate) config_refresh: u64,
    /// The admin policy: a file, or an https:// URL (signed as a file is; the last good copy
    /// kept in the profile) (default: /etc/tessera/policy.json if it exists, else the
    /// manifest's `policy`); reloaded when it changes.
    #[arg(long, value_name = "FILE|URL", env = "TESSERA_POLICY")]
    pub(crate) policy: Option<PathBuf>,
    /// Signing rules for the policy file itself ({"requireSigned", "trustedKeys", "revokedKeys"};
    /// default: /etc/tessera/policy-trust.json if it exists): the policy must then carry a valid
    /// detached signature (`policy.json.sig`, from `tessera sign file`).
    #[arg(long, value_name = "FILE", env = "TESSERA_POLICY_TRUST")]
    pub(crate) policy_trust: Option<PathBuf>,
    /// Keyring for the vault's master keys (the audit log's signing key is kept in the vault).
    #[arg(long, value_enum, default_value = "secret-service", env = "TESSERA_KEYRING")]
    pub(crate) keyring: KeyringArg,
    /// Keep the vault's master keys in this file instead of a keyring.
    #[arg(long, value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once('x').ok_or_else(|| format!("{s:?}: expected WIDTHxHEIGHT"))?;
    let n = |v: &str| {
        v.parse::<u32>().map_err(|e| format!("{v:?}: {e}")).and_then(|n| {
            if (100..=16384).contains(&n) { Ok(n) } else { Err(format!("{n} is not between 100 and 16384")) }
        })
    };
    Ok((n(w)?, n(h)?))
}

#[derive(Debug, Args)]
pub(crate) struct CtlArgs {
    #[command(flatten)]
    pub(crate) socket: CtlSocketArg,
    #[command(subcommand)]
    pub(crate) command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CtlCommand {
    /// Lists app instances: app, instance, pid, web processes, state, restarts, memory.
    Apps {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Starts an instance of an app from the manifest; prints its instance number.
    Launch {
        /// The app's id.
        app: String,
    },
    /// Closes an instance.
    Close {
        /// The instance number.
        instance: u64,
    },
    /// Evaluates a JavaScript expression in an instance's page; prints the result as JSON.
    Eval {
        /// The instance number.
        instance: u64,
        /// The expression (promises are awaited).
        js: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
    /// Publishes a JSON value to a topic.
    Publish {
        /// The topic.
        topic: String,
        /// The value, as JSON.
        json: String,
        /// Durable: kept in the journal until delivered (answered once committed).
        #[arg(long)]
        durable: bool,
    },
    /// Prints every message on topics matching PATTERN, one JSON line each, until interrupted.
    Subscribe {
        /// The pattern (`*` one segment, `#` any number).
        pattern: String,
    },
    /// Saves the shell window, with the app views in it, as a PNG.
    Screenshot {
        /// Where to write it.
        path: PathBuf,
        /// Which shell window (its `id` in `layout get`); the main window by default.
        #[arg(long)]
        window: Option<u32>,
    },
    /// Shuts the shell down (saving the session first).
    Quit,
    /// Workspaces: the desk's layout, apps and channels, saved by name.
    #[command(subcommand)]
    Layout(LayoutCommand),
    /// The desk link: its state, server, groups and counters; exit 1 when it is not connected.
    Link {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The shell's services (the audit log, ...) and its apps; exit 1 when any is not well.
    Health {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lists the permission prompts waiting for an answer.
    Prompts {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Answers a permission prompt, as the dialog would.
    Prompt {
        /// The prompt's id (from `ctl prompts`).
        id: u64,
        /// The answer.
        #[arg(value_parser = ["allow-once", "allow-always", "deny"])]
        answer: String,
    },
    /// The remembered permission answers.
    #[command(subcommand)]
    Grants(GrantsCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum GrantsCommand {
    /// Lists them.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Forgets one, so the app's next request asks again.
    Revoke {
        /// The app's id.
        app: String,
        /// The permission, with its scope if it has one (`bus.publish:orders.#`).
        permission: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum LayoutCommand {
    /// Prints the live layout: the tree, and each pane's app instance, channel and bounds.
    Get {
        /// Print JSON (the only format).
        #[arg(long)]
        json: bool,
    },
    /// Saves the desk as NAME; it becomes the one restored at start-up.
    Save {
        /// The workspace's name.
        name: String,
    },
    /// Makes the desk look like the workspace NAME.
    Restore {
        /// The workspace's name.
        name: String,
    },
    /// Lists the saved workspaces.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}
