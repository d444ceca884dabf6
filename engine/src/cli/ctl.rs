//! `floodgate ctl`: the admin interface's command-line client. One HTTP
//! request to the metrics listener of a running `floodgate serve` (see
//! `cli::admin`, and `cli::http_client` for the request), bounded in time;
//! the answer's text is printed, and a refusal (any status but 200) is an
//! error with the server's reason.

use std::net::SocketAddr;

use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct CtlArgs {
    /// The metrics listener of the running floodgate (its --metrics);
    /// changes are taken from loopback clients only.
    #[arg(long, default_value = "127.0.0.1:9100")]
    pub metrics: SocketAddr,
    #[command(subcommand)]
    pub what: CtlCmd,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum CtlCmd {
    /// List the proxy's backends: weight, state, connections, figures.
    Backends,
    /// Give a backend a new weight (0-10000; 0 drains it).
    Weight {
        /// ADDR:PORT, as given to --backend.
        backend: SocketAddr,
        weight: u32,
        #[arg(long, default_value_t = 0)]
        pool: usize,
    },
    /// No new clients for a backend; its connections go on until they end
    /// (or, with --close-within, each ends gently at its turn within it).
    Drain {
        backend: SocketAddr,
        #[arg(long, default_value_t = 0)]
        pool: usize,
        /// End the backend's connections within this time (e.g. 60s),
        /// spread evenly: each gets a FIN towards the backend.
        #[arg(long, value_name = "DURATION")]
        close_within: Option<String>,
    },
    /// Give a drained backend back the weight it had.
    Undrain {
        backend: SocketAddr,
        #[arg(long, default_value_t = 0)]
        pool: usize,
    },
}

impl CtlCmd {
    /// The request: method and target.
    fn request(&self) -> (&'static str, String) {
        let q = |action: &str, pool: usize, b: &SocketAddr, extra: String| {
            format!("/backends/{action}?pool={pool}&backend={}{extra}", encode(&b.to_string()))
        };
        match self {
            CtlCmd::Backends => ("GET", "/backends".into()),
            CtlCmd::Weight { backend, weight, pool } => {
                ("POST", q("weight", *pool, backend, format!("&weight={weight}")))
            }
            CtlCmd::Drain { backend, pool, close_within } => {
                let extra = close_within.as_ref().map(|d| format!("&close_within={}", encode(d))).unwrap_or_default();
                ("POST", q("drain", *pool, backend, extra))
            }
            CtlCmd::Undrain { backend, pool } => ("POST", q("undrain", *pool, backend, String::new())),
        }
    }
}

/// Percent-encodes all but unreserved characters (RFC 3986 §2.3).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends the request; the answer's text, or the error to print.
pub fn run(a: &CtlArgs) -> Result<String, String> {
    let (method, target) = a.what.request();
    super::http_client::request(a.metrics, method, &target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: CtlArgs,
    }

    fn parse(args: &[&str]) -> CtlArgs {
        T::try_parse_from(std::iter::once("ctl").chain(args.iter().copied())).unwrap().a
    }

    #[test]
    fn commands_become_requests() {
        let a = parse(&["drain", "198.18.2.10:80"]);
        assert_eq!(a.metrics, "127.0.0.1:9100".parse().unwrap());
        assert_eq!(a.what.request(), ("POST", "/backends/drain?pool=0&backend=198.18.2.10%3A80".into()));
        let a = parse(&["--metrics", "127.0.0.1:9200", "weight", "[2001:db8::2:10]:80", "5", "--pool", "1"]);
        assert_eq!(
            a.what.request(),
            ("POST", "/backends/weight?pool=1&backend=%5B2001%3Adb8%3A%3A2%3A10%5D%3A80&weight=5".into())
        );
        assert_eq!(parse(&["backends"]).what.request(), ("GET", "/backends".into()));
        let a = parse(&["drain", "198.18.2.10:80", "--close-within", "90s"]);
        assert_eq!(a.what.request().1, "/backends/drain?pool=0&backend=198.18.2.10%3A80&close_within=90s");
        assert!(T::try_parse_from(["ctl", "drain", "nope"]).is_err());
    }

    /// Against a one-shot server: the request as sent, 200 printed, any
    /// other status an error carrying the server's reason.
    #[test]
    fn answers_and_refusals() {
        use crate::cli::http_client::serve_canned;
        let (addr, t) = serve_canned(vec![("200 OK", "pool backend\n0 198.18.2.10:80\n".into())]);
        let a = CtlArgs { metrics: addr, what: CtlCmd::Backends };
        assert_eq!(run(&a).unwrap(), "pool backend\n0 198.18.2.10:80\n");
        assert!(t.join().unwrap()[0].starts_with("GET /backends HTTP/1.1\r\n"));
        let (addr, t) =
            serve_canned(vec![("409 Conflict", "198.18.2.10:80 is the last backend taking clients\n".into())]);
        let drain = CtlCmd::Drain { backend: "198.18.2.10:80".parse().unwrap(), pool: 0, close_within: None };
        let a = CtlArgs { metrics: addr, what: drain };
        let e = run(&a).unwrap_err();
        assert!(e.contains("409") && e.contains("last backend"), "{e}");
        assert!(t.join().unwrap()[0].starts_with("POST /backends/drain?pool=0&backend=198.18.2.10%3A80 HTTP/1.1\r\n"));
        let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let e = run(&CtlArgs { metrics: gone, what: CtlCmd::Backends }).unwrap_err();
        assert!(e.contains("cannot reach"), "{e}");
    }
}
