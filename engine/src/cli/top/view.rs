//! How `floodgate top` lays the model out: a header, the shards' table with
//! its totals line, the backends' table when the proxy runs. The same cells
//! go to the terminal (ratatui) and, for `--once`, to plain text.

use std::fmt::Write;

use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::model::{BackendState, Count, Diff, Model, ShardRow};

/// A table's title, column names and rows of cells; the first `left`
/// columns are text (left-aligned), the rest numbers.
pub struct Grid {
    pub title: &'static str,
    pub head: &'static [&'static str],
    pub left: usize,
    pub rows: Vec<Vec<String>>,
    /// The last row sums the others.
    pub totals: bool,
}

const SHARD_HEAD: &[&str] =
    &["shard", "state", "conns", "half-open", "time-wait", "new/s", "seg-in/s", "seg-out/s", "rx/s", "tx/s", "drops/s"];
const LISTENER_HEAD: &[&str] = &["listener", "active", "syn/s", "conn/s", "in B/s", "out B/s"];
const BACKEND_HEAD: &[&str] =
    &["pool", "backend", "state", "weight", "active", "conn/s", "conn-fail", "check-fail", "to B/s", "from B/s"];

/// A number the way a console has room for: 0.5, 42, 12.3k, 4.1M, 2.0G.
pub fn si(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() {
        format!("{x}")
    } else if a >= 1e9 {
        format!("{:.1}G", x / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else if a < 10.0 && x.fract() != 0.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

fn gauge(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), si)
}

fn rate(d: Diff) -> String {
    match d {
        Diff::By(x) => si(x),
        Diff::Restart => "restart".into(),
        Diff::Unknown => "-".into(),
    }
}

/// A count since start, and `+n` when it grew over the interval.
fn count(c: Count) -> String {
    match c.new {
        Diff::By(n) if n > 0.0 => format!("{} +{}", si(c.total), si(n)),
        Diff::Restart => format!("{} restart", si(c.total)),
        _ => si(c.total),
    }
}

/// 1d 02:03:04, or 02:03:04 under a day.
pub fn uptime(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let hms = format!("{:02}:{:02}:{:02}", s / 3600 % 24, s / 60 % 60, s % 60);
    if s >= 86_400 {
        format!("{}d {hms}", s / 86_400)
    } else {
        hms
    }
}

/// The header line: who, health, uptime.
pub fn header(m: &Model) -> String {
    let mut h = format!("floodgate {}", m.version.as_deref().unwrap_or("?"));
    for (k, v) in [("on", &m.iface), ("app", &m.app), ("xdp", &m.xdp_mode)] {
        if let Some(v) = v {
            let _ = write!(h, "  {k} {v}");
        }
    }
    let up = match m.up {
        Some(true) => "up",
        Some(false) => "NOT UP",
        None => "up ?",
    };
    let _ = write!(h, "  |  {up}  link {}", m.link.as_deref().unwrap_or("?"));
    if let Some(u) = m.uptime_secs {
        let _ = write!(h, "  uptime {}", uptime(u));
    }
    if m.draining == Some(true) {
        h += "  DRAINING";
    }
    if m.restarted {
        h += "  RESTARTED";
    }
    h
}

fn shard_cells(r: &ShardRow) -> Vec<String> {
    vec![
        r.shard.clone(),
        if r.stalled { "STALLED" } else { "ok" }.into(),
        gauge(r.established),
        gauge(r.half_open),
        gauge(r.time_wait),
        rate(r.accepts),
        rate(r.segments_in),
        rate(r.segments_out),
        rate(r.rx_frames),
        rate(r.tx_frames),
        rate(r.drops),
    ]
}

/// The shards' table, the totals last.
pub fn shards(m: &Model) -> Grid {
    let mut rows: Vec<Vec<String>> = m.shards.iter().map(shard_cells).collect();
    rows.push(shard_cells(&m.total));
    Grid { title: "shards", head: SHARD_HEAD, left: 2, rows, totals: true }
}

/// The listeners' table, if any listener reported.
pub fn listeners(m: &Model) -> Option<Grid> {
    if m.listeners.is_empty() {
        return None;
    }
    let rows = m
        .listeners
        .iter()
        .map(|l| {
            vec![l.listener.clone(), si(l.active), rate(l.syns), rate(l.accepts), rate(l.bytes_in), rate(l.bytes_out)]
        })
        .collect();
    Some(Grid { title: "listeners", head: LISTENER_HEAD, left: 1, rows, totals: false })
}

/// The backends' table, if the engine runs the proxy.
pub fn backends(m: &Model) -> Option<Grid> {
    if m.backends.is_empty() {
        return None;
    }
    let rows = m
        .backends
        .iter()
        .map(|b| {
            let state = match b.state {
                BackendState::Up => "up".to_string(),
                BackendState::Down => "DOWN".to_string(),
                BackendState::Drained => "drained".to_string(),
                BackendState::Partial { up, of } => format!("up {up}/{of}"),
            };
            vec![
                b.pool.clone(),
                b.backend.clone(),
                state,
                gauge(b.weight),
                si(b.active),
                rate(b.connects),
                count(b.connect_failures),
                count(b.check_failures),
                rate(b.bytes_to),
                rate(b.bytes_from),
            ]
        })
        .collect();
    Some(Grid { title: "backends", head: BACKEND_HEAD, left: 3, rows, totals: false })
}

impl Grid {
    /// Each column's width: its widest cell or name.
    fn widths(&self) -> Vec<usize> {
        (0..self.head.len())
            .map(|c| {
                let cells = self.rows.iter().map(|r| r[c].chars().count());
                cells.chain([self.head[c].len()]).max().unwrap_or(0)
            })
            .collect()
    }

    /// Plain text: the title, the column names, a line per row.
    pub fn text(&self, out: &mut String) {
        let w = self.widths();
        let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
            let mut l = String::new();
            for (c, cell) in cells.enumerate() {
                if c > 0 {
                    l += "  ";
                }
                if c < self.left {
                    let _ = write!(l, "{cell:<0$}", w[c]);
                } else {
                    let _ = write!(l, "{cell:>0$}", w[c]);
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        let _ = writeln!(out, "{}:", self.title);
        line(out, &mut self.head.iter().copied());
        for r in &self.rows {
            line(out, &mut r.iter().map(String::as_str));
        }
    }

    /// The ratatui table, in a titled box.
    fn table(&self) -> Table<'_> {
        let w = self.widths();
        let align = |c: usize, s: &str| {
            let l = Line::from(s.to_string());
            Cell::from(if c < self.left { l } else { l.right_aligned() })
        };
        let head = Row::new(self.head.iter().enumerate().map(|(c, s)| align(c, s)))
            .style(Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED));
        let n = self.rows.len();
        let rows = self.rows.iter().enumerate().map(|(i, r)| {
            let row = Row::new(r.iter().enumerate().map(|(c, s)| align(c, s)));
            let bad = r.iter().any(|s| s == "STALLED" || s == "DOWN" || s == "restart");
            match () {
                _ if self.totals && i + 1 == n => row.style(Style::new().add_modifier(Modifier::BOLD)),
                _ if bad => row.style(Style::new().fg(Color::Red)),
                _ => row,
            }
        });
        Table::new(rows, w.iter().map(|&x| Constraint::Length(x as u16)))
            .header(head)
            .column_spacing(2)
            .block(Block::bordered().title(format!(" {} ", self.title)))
    }

    /// Lines the table takes on the terminal: borders, column names, rows.
    fn height(&self) -> u16 {
        self.rows.len() as u16 + 3
    }
}

/// The whole model as plain text (`--once`).
pub fn text(m: &Model, source: &str) -> String {
    let mut out = format!("{}\n{source}, rates over {:.2} s\n\n", header(m), m.secs);
    shards(m).text(&mut out);
    if let Some(l) = listeners(m) {
        out.push('\n');
        l.text(&mut out);
    }
    if let Some(b) = backends(m) {
        out.push('\n');
        b.text(&mut out);
    }
    out
}

/// What the terminal shows: the model once there are two scrapes, and the
/// last scrape's error if it failed.
pub struct Screen<'a> {
    pub model: Option<&'a Model>,
    pub error: Option<&'a str>,
    /// Where from and how often, e.g. `127.0.0.1:9100 every 1s`.
    pub source: &'a str,
}

/// Draws the screen into the frame.
pub fn draw(f: &mut Frame<'_>, s: &Screen<'_>) {
    let shard_grid = s.model.map(shards);
    let listener_grid = s.model.and_then(listeners);
    let backend_grid = s.model.and_then(backends);
    let [head, body, lis, back] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(shard_grid.as_ref().map_or(0, Grid::height)),
        Constraint::Length(listener_grid.as_ref().map_or(0, Grid::height)),
        Constraint::Min(0),
    ])
    .areas(f.area());
    let mut lines = vec![
        Line::from(s.model.map_or_else(|| "floodgate: waiting for a second scrape".to_string(), header))
            .style(Style::new().add_modifier(Modifier::BOLD)),
        Line::from(format!("{}  (q quits)", s.source)),
    ];
    if let Some(e) = s.error {
        lines.push(Line::from(format!("scrape failed: {e}")).style(Style::new().fg(Color::Red)));
    }
    f.render_widget(Paragraph::new(lines), head);
    if let Some(g) = &shard_grid {
        f.render_widget(g.table(), body);
    }
    if let Some(g) = &listener_grid {
        f.render_widget(g.table(), lis);
    }
    if let Some(g) = &backend_grid {
        f.render_widget(g.table(), back);
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::fixture::scrape;
    use super::super::prom::Scrape;
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn model() -> Model {
        let after = scrape(3723.0, 3, 0).replace(
            "floodgate_tcp_segments_in_total{shard=\"0\"} 3000",
            "floodgate_tcp_segments_in_total{shard=\"0\"} 5",
        );
        Model::new(&Scrape::parse(&scrape(3722.0, 1, 0)).unwrap(), &Scrape::parse(&after).unwrap(), 1.0)
    }

    #[test]
    fn numbers_and_durations() {
        for (x, s) in [(0.0, "0"), (0.5, "0.5"), (42.0, "42"), (9999.0, "9999"), (12_345.0, "12.3k"), (4.1e6, "4.1M")] {
            assert_eq!(si(x), s);
        }
        assert_eq!(si(2.5e9), "2.5G");
        assert_eq!(uptime(3723.4), "01:02:03");
        assert_eq!(uptime(90_061.0), "1d 01:01:01");
    }

    /// The terminal, rendered into a test backend, shows the expected cells.
    #[test]
    fn renders_tables_on_a_terminal() {
        let m = model();
        let mut t = Terminal::new(TestBackend::new(120, 20)).unwrap();
        t.draw(|f| draw(f, &Screen { model: Some(&m), error: None, source: "127.0.0.1:9100 every 1s" })).unwrap();
        let buf = t.backend().buffer();
        let lines: Vec<String> = (0..buf.area.height)
            .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect::<String>())
            .collect();
        let screen = lines.join("\n");
        let row = |start: &str| {
            lines
                .iter()
                .find(|l| l.trim_start_matches('│').trim_start().starts_with(start))
                .cloned()
                .unwrap_or_default()
        };
        assert!(
            lines[0].starts_with("floodgate 0.1.0  on fg-s0  app proxy  xdp native  |  up  link up  uptime 01:02:03")
        );
        assert!(lines[1].contains("127.0.0.1:9100 every 1s  (q quits)"), "{screen}");
        assert!(screen.contains(" shards ") && screen.contains(" backends "), "{screen}");
        for (start, cells) in [
            ("shard", &["conns", "half-open", "time-wait", "new/s", "seg-in/s", "drops/s"][..]),
            ("0 ", &["ok", "10", "100", "100", "restart", "1800", "2200", "1900", "12"]),
            ("1 ", &["20", "200", "4000", "3600"]),
            ("total", &["30", "300", "300", "restart", "5400"]),
            ("pool", &["backend", "conn/s", "conn-fail", "check-fail", "to B/s", "from B/s"]),
            ("0     198.18.2.10:80", &["up", "6", "80", "4000", "1.0M"]),
            ("0     198.18.2.11:80", &["DOWN", "6 +4", "12 +8"]),
            ("0     198.18.2.12:80", &["drained"]),
        ] {
            let r = row(start);
            for c in cells {
                assert!(
                    r.split_whitespace().any(|w| w == *c) || r.contains(&format!(" {c} ")),
                    "{c:?} not in {r:?}\n{screen}"
                );
            }
        }
        // An error shows under the header, the last model stays.
        t.draw(|f| draw(f, &Screen { model: Some(&m), error: Some("connection refused"), source: "x" })).unwrap();
        let buf = t.backend().buffer();
        let third: String = (0..buf.area.width).map(|x| buf[(x, 2)].symbol()).collect();
        assert!(third.starts_with("scrape failed: connection refused"), "{third}");
        t.draw(|f| draw(f, &Screen { model: None, error: None, source: "x" })).unwrap();
        let buf = t.backend().buffer();
        let first: String = (0..buf.area.width).map(|x| buf[(x, 0)].symbol()).collect();
        assert!(first.starts_with("floodgate: waiting for a second scrape"), "{first}");
    }

    #[test]
    fn plain_text_tables() {
        let out = text(&model(), "127.0.0.1:9100");
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("floodgate 0.1.0  on fg-s0"), "{out}");
        assert_eq!(lines[1], "127.0.0.1:9100, rates over 1.00 s");
        assert_eq!(lines[3], "shards:");
        assert_eq!(
            lines[4],
            "shard  state  conns  half-open  time-wait  new/s  seg-in/s  seg-out/s  rx/s  tx/s  drops/s"
        );
        assert_eq!(
            lines[5],
            "0      ok        10          1        100    100   restart       1800  2200  1900       12"
        );
        assert_eq!(
            lines[7],
            "total  ok        30          3        300    300   restart       5400  6600  5700       24"
        );
        assert_eq!(lines[9], "listeners:");
        assert_eq!(lines[10], "listener       active  syn/s  conn/s  in B/s  out B/s");
        assert_eq!(lines[11], "198.18.0.1:80      30    360     300   24.0k   540.0k");
        assert_eq!(lines[13], "backends:");
        assert!(lines[16].starts_with("0     198.18.2.11:80  DOWN"), "{out}");
        assert!(
            lines[16].ends_with("DOWN          1       6      80       6 +4       12 +8    4000      1.0M"),
            "{out}"
        );
    }
}
