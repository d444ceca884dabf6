//! `floodgate top`: a live terminal view of a running `floodgate serve`,
//! like `htop`: per-shard connections and rates, totals, the proxy's
//! backends, health. It scrapes the metrics listener's `/metrics`
//! (Prometheus text) every interval and shows the growth of the counters
//! between two scrapes as rates. `--once` prints the same as plain text
//! after two scrapes, without touching the terminal.

pub mod model;
pub mod prom;
pub mod view;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Args;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use super::config::Secs;
use super::http_client;
use model::Model;
use prom::Scrape;

#[derive(Args, Debug)]
pub struct TopArgs {
    /// The metrics listener of the running floodgate (its --metrics).
    #[arg(long, default_value = "127.0.0.1:9100")]
    pub metrics: SocketAddr,
    /// Time between scrapes: rates are the growth over it (100ms to 1h).
    #[arg(long, default_value = "1s")]
    pub interval: Secs,
    /// Scrape twice, an interval apart, print the tables as text and exit.
    #[arg(long)]
    pub once: bool,
}

/// Scrapes and parses `/metrics`; the time of the answer too.
fn scrape(addr: SocketAddr) -> Result<(Scrape, Instant), String> {
    let text = http_client::get(addr, "/metrics")?;
    let s = Scrape::parse(&text).map_err(|e| format!("{addr}/metrics: {e}"))?;
    Ok((s, Instant::now()))
}

fn check_interval(a: &TopArgs) -> Result<Duration, String> {
    let i = a.interval.0;
    if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&i) {
        return Err(format!("--interval {} is out of range (100ms to 1h)", a.interval));
    }
    Ok(i)
}

/// `--once`: two scrapes an interval apart, the tables as text.
pub fn once(a: &TopArgs) -> Result<String, String> {
    let interval = check_interval(a)?;
    let (prev, t0) = scrape(a.metrics)?;
    std::thread::sleep(interval);
    let (cur, t1) = scrape(a.metrics)?;
    let m = Model::new(&prev, &cur, (t1 - t0).as_secs_f64());
    Ok(view::text(&m, &a.metrics.to_string()))
}

/// Leaves raw mode and the alternate screen however `live` ends (a panic
/// is covered by the hook `ratatui::try_init` installs).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Whether a key ends the view: q, Esc, Ctrl-C (raw mode delivers it as a key).
fn quits(e: &Event) -> bool {
    let Event::Key(k) = e else { return false };
    k.kind == KeyEventKind::Press
        && (matches!(k.code, KeyCode::Char('q' | 'Q') | KeyCode::Esc)
            || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL)))
}

/// The live view, until a quitting key. The first scrape is taken before
/// the terminal is touched, so an unreachable engine is a plain error.
pub fn live(a: &TopArgs) -> Result<(), String> {
    let interval = check_interval(a)?;
    let mut prev = scrape(a.metrics)?;
    let source = format!("{} every {}", a.metrics, humantime(interval));
    let mut term = ratatui::try_init().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    let _restore = Restore;
    let mut model: Option<Model> = None;
    let mut error: Option<String> = None;
    let mut next = prev.1 + interval;
    loop {
        term.draw(|f| view::draw(f, &view::Screen { model: model.as_ref(), error: error.as_deref(), source: &source }))
            .map_err(|e| format!("terminal: {e}"))?;
        // Keys until the next scrape is due; a resize redraws at once.
        let now = Instant::now();
        if now < next {
            if event::poll(next - now).map_err(|e| format!("terminal: {e}"))? {
                let e = event::read().map_err(|e| format!("terminal: {e}"))?;
                if quits(&e) {
                    return Ok(());
                }
            }
            continue;
        }
        match scrape(a.metrics) {
            Ok(cur) => {
                model = Some(Model::new(&prev.0, &cur.0, (cur.1 - prev.1).as_secs_f64()));
                error = None;
                prev = cur;
            }
            // The last figures stay; the next success compares with the last good scrape.
            Err(e) => error = Some(e),
        }
        next = Instant::now() + interval;
    }
}

/// 1s, 500ms, 2.5s.
fn humantime(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// `floodgate top`: `--once` prints, otherwise the live view.
pub fn run(a: &TopArgs) -> Result<Option<String>, String> {
    if a.once {
        once(a).map(Some)
    } else {
        live(a).map(|()| None)
    }
}

#[cfg(test)]
mod tests {
    use super::model::fixture::scrape as canned;
    use super::*;
    use crate::cli::http_client::serve_canned;

    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        a: TopArgs,
    }

    fn parse(args: &[&str]) -> Result<TopArgs, clap::Error> {
        <T as clap::Parser>::try_parse_from(std::iter::once("top").chain(args.iter().copied())).map(|t| t.a)
    }

    #[test]
    fn arguments() {
        let a = parse(&[]).unwrap();
        assert_eq!(
            (a.metrics, a.interval.0, a.once),
            ("127.0.0.1:9100".parse().unwrap(), Duration::from_secs(1), false)
        );
        let a = parse(&["--metrics", "127.0.0.1:9200", "--interval", "250ms", "--once"]).unwrap();
        assert_eq!((a.metrics.port(), a.interval.0, a.once), (9200, Duration::from_millis(250), true));
        assert!(check_interval(&a).is_ok());
        assert!(check_interval(&parse(&["--interval", "10ms"]).unwrap()).unwrap_err().contains("out of range"));
        assert!(parse(&["--interval", "soon"]).is_err());
        assert_eq!(
            (humantime(Duration::from_secs(1)), humantime(Duration::from_millis(250))),
            ("1s".into(), "250ms".into())
        );
    }

    #[test]
    fn keys_that_quit() {
        use ratatui::crossterm::event::KeyEvent;
        let key = |c, m| Event::Key(KeyEvent::new(c, m));
        assert!(quits(&key(KeyCode::Char('q'), KeyModifiers::NONE)));
        assert!(quits(&key(KeyCode::Esc, KeyModifiers::NONE)));
        assert!(quits(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)));
        assert!(!quits(&key(KeyCode::Char('c'), KeyModifiers::NONE)));
        assert!(!quits(&Event::Resize(80, 24)));
    }

    /// `--once` against a server answering two canned scrapes: two GETs of
    /// /metrics, the tables with rates over the time between them.
    #[test]
    fn once_scrapes_twice_and_prints_tables() {
        let (addr, t) = serve_canned(vec![("200 OK", canned(10.0, 1, 1)), ("200 OK", canned(10.2, 3, 1))]);
        let a = TopArgs { metrics: addr, interval: Secs(Duration::from_millis(200)), once: true };
        let out = run(&a).unwrap().unwrap();
        let reqs = t.join().unwrap();
        assert_eq!(reqs.len(), 2);
        assert!(reqs.iter().all(|r| r.starts_with("GET /metrics HTTP/1.1\r\n")));
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("floodgate 0.1.0  on fg-s0  app proxy  xdp native  |  up  link up"), "{out}");
        assert!(lines[1].starts_with(&format!("{addr}, rates over 0.2")), "{out}");
        assert!(lines[4].starts_with("shard  state  conns"), "{out}");
        // Shard 1 accepted 200 more connections over about 0.2 s: near 1000/s.
        let shard1: Vec<&str> = lines[6].split_whitespace().collect();
        assert_eq!(&shard1[..5], ["1", "ok", "20", "2", "200"], "{out}");
        let accepts: f64 = shard1[5].parse().unwrap();
        assert!((100.0..=1000.0).contains(&accepts), "{out}");
        assert!(lines[7].starts_with("total"), "{out}");
        assert!(out.contains("backends:\n") && out.contains("198.18.2.12:80  drained"), "{out}");
        // A server that is not there is an error before anything is printed.
        let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert!(run(&TopArgs { metrics: gone, ..a }).unwrap_err().contains("cannot reach"));
    }
}
