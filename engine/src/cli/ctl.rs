//! `floodgate ctl`: the admin interface's command-line client. One HTTP
//! request to the metrics listener of a running `floodgate serve` (see
//! `cli::admin`), bounded in time; the answer's text is printed, and a
//! refusal (any status but 200) is an error with the server's reason.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use clap::{Args, Subcommand};

/// How long the connect, and then the whole exchange, may take.
const TIMEOUT: Duration = Duration::from_secs(5);

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
            CtlCmd::Weight { backend, weight, pool } => ("POST", q("weight", *pool, backend, format!("&weight={weight}"))),
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
    let addr = a.metrics;
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)
        .map_err(|e| format!("cannot reach floodgate's admin interface at {addr}: {e} (is it serving with --metrics {addr}?)"))?;
    let _ = s.set_read_timeout(Some(TIMEOUT));
    let _ = s.set_write_timeout(Some(TIMEOUT));
    let req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| format!("{addr}: {e}"))?;
    let mut resp = Vec::new();
    s.take(1 << 20).read_to_end(&mut resp).map_err(|e| format!("{addr}: no answer: {e}"))?;
    let resp = String::from_utf8_lossy(&resp);
    let (head, body) = resp.split_once("\r\n\r\n").ok_or_else(|| format!("{addr}: not an HTTP answer"))?;
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok());
    match status {
        Some(200) => Ok(body.to_string()),
        Some(code) => Err(format!("{method} {target}: {code}: {}", body.trim_end())),
        None => Err(format!("{addr}: not an HTTP answer")),
    }
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
        let serve = |status: &'static str, body: &'static str| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let t = std::thread::spawn(move || {
                let (mut c, _) = l.accept().unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.ends_with(b"\r\n\r\n") {
                    let n = c.read(&mut buf).unwrap();
                    assert!(n > 0);
                    req.extend_from_slice(&buf[..n]);
                }
                let r = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                c.write_all(r.as_bytes()).unwrap();
                String::from_utf8(req).unwrap()
            });
            (addr, t)
        };
        let (addr, t) = serve("200 OK", "pool backend\n0 198.18.2.10:80\n");
        let a = CtlArgs { metrics: addr, what: CtlCmd::Backends };
        assert_eq!(run(&a).unwrap(), "pool backend\n0 198.18.2.10:80\n");
        assert!(t.join().unwrap().starts_with("GET /backends HTTP/1.1\r\n"));
        let (addr, t) = serve("409 Conflict", "198.18.2.10:80 is the last backend taking clients\n");
        let drain = CtlCmd::Drain { backend: "198.18.2.10:80".parse().unwrap(), pool: 0, close_within: None };
        let a = CtlArgs { metrics: addr, what: drain };
        let e = run(&a).unwrap_err();
        assert!(e.contains("409") && e.contains("last backend"), "{e}");
        t.join().unwrap();
        let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let e = run(&CtlArgs { metrics: gone, what: CtlCmd::Backends }).unwrap_err();
        assert!(e.contains("cannot reach"), "{e}");
    }
}
