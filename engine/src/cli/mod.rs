//! The `floodgate` command line: `floodgate serve ...` (and its config file),
//! `floodgate ctl ...` (the admin interface's client), `floodgate top` (a
//! live view of a running engine), logging set-up, exit status.

pub mod admin;
pub mod announce;
pub mod apps;
pub mod boot;
pub mod config;
pub mod ctl;
pub mod http_client;
pub mod serve;
pub mod signals;
pub mod top;
pub mod watchdog;
pub mod xdp_cookies;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use config::Settings;

const ABOUT: &str = "floodgate: a kernel-bypass TCP server engine over AF_XDP";

const SERVE_LONG: &str = "\
Serves TCP on an interface straight from AF_XDP: the XDP program steers frames \
for the VIPs and ports to one AF_XDP socket per RX queue, and one shard per \
queue (a thread pinned to a CPU) runs TCP and the application. Everything else \
(ARP, ICMP, SSH, other ports) stays with the kernel.

Settings come from the command line and, with --config, from a TOML file with \
the same names (e.g. `time-wait-capacity = 100000`); the command line wins. \
Durations take a unit: 500ms, 30s, 2m, 1h (a bare number is seconds).

SIGINT/SIGTERM: stop accepting, let connections finish for --drain, reset the \
rest, detach the XDP program and exit. A second signal stops at once. With \
--announce-table (scale-out by BGP), the VIP routes BIRD announces go first, \
and connections are still accepted for --announce-wait before the drain.

Logs go to stderr; RUST_LOG sets the level (default info).

Example (the testbed of deploy/testbed.sh):
  ip netns exec fg-srv floodgate serve --iface fg-s0 --vip 198.18.0.1 --port 80 \\
      --app http --metrics 127.0.0.1:9100";

#[derive(Parser, Debug)]
#[command(name = "floodgate", version, about = ABOUT, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Serve TCP on an interface over AF_XDP (needs root).
    #[command(long_about = SERVE_LONG)]
    Serve(Box<Settings>),
    /// Talk to a running floodgate's admin interface: list the proxy's
    /// backends, set a weight, drain, undrain (from the same host).
    Ctl(ctl::CtlArgs),
    /// A live terminal view of a running floodgate, from its metrics:
    /// per-shard connections and rates, the proxy's backends, health
    /// (q quits); --once prints it as text.
    Top(top::TopArgs),
}

/// Sets up logging to stderr: RUST_LOG, default `info`.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}

/// The binary's entry point.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Cmd::Serve(s) => match serve::serve(*s) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("floodgate: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Ctl(a) => match ctl::run(&a) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("floodgate ctl: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Top(a) => match top::run(&a) {
            Ok(text) => {
                print!("{}", text.unwrap_or_default());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("floodgate top: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
