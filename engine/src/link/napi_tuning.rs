//! The interface half of preferred busy polling: `napi_defer_hard_irqs` and
//! `gro_flush_timeout` in /sys/class/net/IF (Documentation/networking/
//! napi.rst, "Preferred busy polling"; the socket half is
//! [`crate::link::xdp::busy_poll`]).
//!
//! With both non-zero, a NAPI instance the application busy-polls keeps its
//! interrupt masked (`napi_defer_hard_irqs` empty polls in a row) and is
//! handed back to the interrupt path only by a `gro_flush_timeout` timer
//! when the application stops polling. So the timeout must exceed the
//! longest gap between two busy polls of a working shard, and is what an
//! idle shard's first frame may wait at worst.
//!
//! The old values are restored on every exit of the process that changed
//! them: [`NapiTuning`] restores them when dropped (normal stop, start-up
//! error, SIGINT/SIGTERM, a shard's panic: all return through `serve`). A
//! crash or SIGKILL cannot restore anything, so the old values are written
//! to a state file *before* the interface is touched
//! (`/run/floodgate/napi-<netns>-<iface>`, on tmpfs: a reboot resets both
//! the file and the interface), removed after the restore; the next start
//! finds a file left behind, restores those values and says so
//! ([`NapiTuning::recover`]).

use std::io;
use std::path::{Path, PathBuf};

/// Where the state files live by default.
pub const STATE_DIR: &str = "/run/floodgate";
/// Where the interfaces' attributes live by default.
pub const SYS_NET: &str = "/sys/class/net";

/// The two attributes, as the kernel prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NapiValues {
    pub defer_hard_irqs: u32,
    /// Nanoseconds.
    pub gro_flush_timeout: u64,
}

impl NapiValues {
    fn encode(&self) -> String {
        format!("napi_defer_hard_irqs={}\ngro_flush_timeout={}\n", self.defer_hard_irqs, self.gro_flush_timeout)
    }

    fn decode(text: &str) -> Option<NapiValues> {
        let mut defer = None;
        let mut gro = None;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("napi_defer_hard_irqs", v)) => defer = v.trim().parse().ok(),
                Some(("gro_flush_timeout", v)) => gro = v.trim().parse().ok(),
                _ => {}
            }
        }
        Some(NapiValues { defer_hard_irqs: defer?, gro_flush_timeout: gro? })
    }
}

/// Paths of the attributes and of the state files (tests use temporary ones).
#[derive(Clone, Debug)]
pub struct Places {
    pub sys_net: PathBuf,
    pub state_dir: PathBuf,
    /// Names this network namespace in the state files' names, so a start
    /// in another namespace never "restores" a same-named interface there.
    pub netns: String,
}

impl Default for Places {
    fn default() -> Self {
        let netns = std::fs::read_link("/proc/self/ns/net")
            .ok()
            .and_then(|p| p.to_str().map(|s| s.chars().filter(char::is_ascii_digit).collect::<String>()))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "0".into());
        Places { sys_net: SYS_NET.into(), state_dir: STATE_DIR.into(), netns }
    }
}

impl Places {
    fn attr(&self, iface: &str, name: &str) -> PathBuf {
        self.sys_net.join(iface).join(name)
    }

    fn state_file(&self, iface: &str) -> PathBuf {
        self.state_dir.join(format!("napi-{}-{iface}", self.netns))
    }

    /// The interface's current values.
    pub fn read(&self, iface: &str) -> io::Result<NapiValues> {
        let get =
            |name| -> io::Result<String> { Ok(std::fs::read_to_string(self.attr(iface, name))?.trim().to_string()) };
        let bad = |name, v: String| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: {v:?}"));
        let d = get("napi_defer_hard_irqs")?;
        let g = get("gro_flush_timeout")?;
        Ok(NapiValues {
            defer_hard_irqs: d.parse().map_err(|_| bad("napi_defer_hard_irqs", d.clone()))?,
            gro_flush_timeout: g.parse().map_err(|_| bad("gro_flush_timeout", g.clone()))?,
        })
    }

    fn write(&self, iface: &str, v: NapiValues) -> io::Result<()> {
        // gro_flush_timeout first on the way in, so the interrupts are never
        // deferred without the timer that hands the NAPI back; on the way
        // out the order does not matter (either 0 ends the deferral).
        std::fs::write(self.attr(iface, "gro_flush_timeout"), v.gro_flush_timeout.to_string())?;
        std::fs::write(self.attr(iface, "napi_defer_hard_irqs"), v.defer_hard_irqs.to_string())
    }
}

/// The interface's values changed for busy polling; restores the old ones
/// when dropped.
#[derive(Debug)]
pub struct NapiTuning {
    iface: String,
    old: NapiValues,
    places: Places,
    restored: bool,
}

impl NapiTuning {
    /// Restores the values a crashed run left on the interfaces of this
    /// namespace. Returns what was restored (interface, values), for the log.
    pub fn recover(places: &Places) -> Vec<(String, NapiValues)> {
        let mut done = Vec::new();
        let prefix = format!("napi-{}-", places.netns);
        let Ok(dir) = std::fs::read_dir(&places.state_dir) else { return done };
        for e in dir.flatten() {
            let name = e.file_name();
            let Some(iface) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
            let Some(v) = std::fs::read_to_string(e.path()).ok().and_then(|t| NapiValues::decode(&t)) else {
                continue;
            };
            // The interface may be gone (then there is nothing to restore).
            if places.write(iface, v).is_ok() || !places.sys_net.join(iface).exists() {
                let _ = std::fs::remove_file(e.path());
                done.push((iface.to_string(), v));
            }
        }
        done
    }

    /// Saves the current values (state file first), then sets `new`.
    pub fn apply(iface: &str, new: NapiValues, places: Places) -> io::Result<NapiTuning> {
        let old = places.read(iface)?;
        std::fs::create_dir_all(&places.state_dir)?;
        let file = places.state_file(iface);
        std::fs::write(&file, old.encode())?;
        if let Err(e) = places.write(iface, new) {
            let _ = places.write(iface, old);
            let _ = std::fs::remove_file(&file);
            return Err(e);
        }
        Ok(NapiTuning { iface: iface.to_string(), old, places, restored: false })
    }

    pub fn old(&self) -> NapiValues {
        self.old
    }

    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Puts the old values back and removes the state file (once).
    pub fn restore(&mut self) -> io::Result<()> {
        if self.restored {
            return Ok(());
        }
        self.restored = true;
        let r = self.places.write(&self.iface, self.old);
        if r.is_ok() || !self.places.sys_net.join(&self.iface).exists() {
            let _ = std::fs::remove_file(self.places.state_file(&self.iface));
        }
        r
    }
}

impl Drop for NapiTuning {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}

/// True when `iface` has the attributes (any netdev since Linux 5.11 has).
pub fn supported(places: &Places, iface: &str) -> bool {
    Path::new(&places.attr(iface, "napi_defer_hard_irqs")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(tag: &str) -> Places {
        let root = std::env::temp_dir().join(format!("fg-napi-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dev = root.join("sys/eth9");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(dev.join("napi_defer_hard_irqs"), "0\n").unwrap();
        std::fs::write(dev.join("gro_flush_timeout"), "20000\n").unwrap();
        Places { sys_net: root.join("sys"), state_dir: root.join("run"), netns: "42".into() }
    }

    const BUSY: NapiValues = NapiValues { defer_hard_irqs: 2, gro_flush_timeout: 200_000 };
    const OLD: NapiValues = NapiValues { defer_hard_irqs: 0, gro_flush_timeout: 20_000 };

    #[test]
    fn apply_saves_first_and_drop_restores() {
        let p = fake("drop");
        {
            let t = NapiTuning::apply("eth9", BUSY, p.clone()).unwrap();
            assert_eq!(t.old(), OLD);
            assert_eq!(p.read("eth9").unwrap(), BUSY);
            let saved = std::fs::read_to_string(p.state_file("eth9")).unwrap();
            assert_eq!(NapiValues::decode(&saved), Some(OLD));
        }
        assert_eq!(p.read("eth9").unwrap(), OLD);
        assert!(!p.state_file("eth9").exists(), "a clean exit leaves no state file");
        assert!(NapiTuning::recover(&p).is_empty());
    }

    #[test]
    fn a_crash_is_repaired_by_the_next_start() {
        let p = fake("crash");
        let t = NapiTuning::apply("eth9", BUSY, p.clone()).unwrap();
        std::mem::forget(t); // the process died: nothing ran
        assert_eq!(p.read("eth9").unwrap(), BUSY);
        // Another namespace's start does not touch it.
        let other = Places { netns: "43".into(), ..p.clone() };
        assert!(NapiTuning::recover(&other).is_empty());
        assert_eq!(p.read("eth9").unwrap(), BUSY);
        // Ours does.
        assert_eq!(NapiTuning::recover(&p), vec![("eth9".to_string(), OLD)]);
        assert_eq!(p.read("eth9").unwrap(), OLD);
        assert!(!p.state_file("eth9").exists());
    }

    #[test]
    fn a_missing_interface_is_an_error_and_changes_nothing() {
        let p = fake("missing");
        assert!(NapiTuning::apply("nope0", BUSY, p.clone()).is_err());
        assert!(!p.state_file("nope0").exists());
        assert!(!supported(&p, "nope0"));
        assert!(supported(&p, "eth9"));
    }
}
