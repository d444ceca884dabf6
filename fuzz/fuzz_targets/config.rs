//! The configuration loader (`cli::config`): a TOML settings file and a
//! `floodgate serve` command line, merged and resolved as `serve` does,
//! without file I/O.
//!
//! Input: the TOML text, then NUL-separated command-line arguments (so the
//! committed seeds stay readable). Checked: no panic; the command line wins
//! over the file; a resolved configuration holds every limit `resolve`
//! promises, and what the shards derive from it (MSS, TIME-WAIT length,
//! SYN-ACK window, the HTTP responses) computes without panic.
#![no_main]

use clap::Parser;
use floodgate::app::http::{Http, HttpConfig};
use floodgate::cli::{Cli, Cmd, Settings};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0);
    let toml = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let mut args = vec!["floodgate".to_string(), "serve".to_string()];
    args.extend(parts.take(64).map(|a| String::from_utf8_lossy(a).into_owned()));
    let file = Settings::from_toml(&toml);
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => match c.command {
            Cmd::Serve(s) => Some(*s),
            // The arguments always begin with `serve`.
            Cmd::Ctl(_) | Cmd::Top(_) => unreachable!("parsed `floodgate serve ...` as another command"),
        },
        Err(_) => None,
    };
    let (Ok(file), Some(cli)) = (file, cli) else { return };
    let merged = cli.clone().over(file.clone());
    if cli.connections.is_some() {
        assert_eq!(merged.connections, cli.connections, "the command line wins");
    } else {
        assert_eq!(merged.connections, file.connections);
    }
    for rx_queues in [None, Some(1), Some(4)] {
        let Ok(r) = merged.resolve(|_| rx_queues) else { continue };
        assert!(!r.vips.is_empty() && !r.ports.is_empty() && !r.ports.contains(&0));
        assert!(r.queues >= 1 && rx_queues.is_none_or(|n| r.queues <= n.max(1)));
        assert!(r.cpus.as_ref().is_none_or(|c| c.len() >= r.queues as usize));
        assert!((576..=9216).contains(&r.tcp.mtu));
        assert!(!r.tcp.msl.is_zero() && r.tcp.msl <= Duration::from_secs(3600));
        assert!(r.cap.connections >= 1 && r.cap.time_wait >= 1 && r.cap.buffers >= 1 && r.cap.events >= 1);
        assert!((512..=1 << 24).contains(&r.cap.buffer_size));
        assert!(r.xdp.rx_ring.is_power_of_two() && r.xdp.tx_ring.is_power_of_two());
        assert!(r.http_max_header_bytes >= 64);
        if let Some(k) = r.tcp.keepalive {
            assert!(!k.idle.is_zero() && !k.interval.is_zero() && k.probes >= 1);
        }
        if let Some(c) = r.proxy.as_ref().and_then(|p| p.check) {
            assert!(!c.timeout.is_zero() && c.timeout <= c.interval);
            assert!((1..=100).contains(&c.rise) && (1..=100).contains(&c.fall));
        }
        // What start-up derives from it.
        let _ = (r.tcp.advertised_mss(false), r.tcp.advertised_mss(true), r.tcp.time_wait(), r.cap.synack_window());
        let http = Http::new(
            1,
            HttpConfig {
                body: r.http_body.clone().into_bytes(),
                body_bytes: r.http_body_bytes,
                max_header_bytes: r.http_max_header_bytes,
                ..HttpConfig::default()
            },
        );
        match r.http_body_bytes {
            None => assert!(http.response().ends_with(r.http_body.as_bytes())),
            Some(n) => assert!(http.response().ends_with(format!("Content-Length: {n}\r\n\r\n").as_bytes())),
        }
    }
});
