//! What a restarted engine keeps from the one before it on the same boot,
//! so the peers' TIME-WAIT from the old process takes the new one's SYNs.
//!
//! A connection's ISN (RFC 6528 §3: a keyed hash of the 4-tuple plus a
//! 4 µs clock) and its timestamps (RFC 7323 §5.4: a per-tuple offset plus
//! a millisecond clock) grow on every new incarnation of a 4-tuple only if
//! key and clock outlive the process. Linux keeps both for the boot (its
//! `net_secret` and the monotonic clock), so a restarted HAProxy's SYNs are
//! taken by its backends' TIME-WAIT (RFC 6191: a newer timestamp, or a
//! higher sequence number). floodgate does the same:
//!
//! * the keys live in `/run/floodgate/secrets` (tmpfs: gone at reboot),
//!   tagged with the kernel's boot id, mode 0600; a file from another boot,
//!   a damaged one, or none, gets new keys (two processes starting at once
//!   agree: the file is created only if absent, and the later one reads
//!   it); a file that cannot be read or written (an unprivileged run
//!   without the unit's `RuntimeDirectory`) leaves the process with keys of
//!   its own, logged, and its active opens then rely on
//!   the RST-and-resend of `syns_resent_after_reset` against an old
//!   TIME-WAIT;
//! * the engine's clock counts from the boot ([`clock_zero`]): CLOCK_MONOTONIC,
//!   which the XDP program's cookies read too.
//!
//! Without this, the proxy's first connections after a restart reuse the
//! same source tuples (each backend's cursor starts at the first) while the
//! backends still hold them in TIME-WAIT, about half of its SYNs were
//! answered with an ACK instead of a SYN-ACK, and some connects timed out.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::tcp::Secrets;

/// Where the keys are kept.
pub const SECRETS: &str = "/run/floodgate/secrets";

/// The kernel's id of this boot.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// The engine's clock zero: the instant CLOCK_MONOTONIC was 0 (the boot),
/// so `now` on the engine's clock is the same in every process of the
/// boot. `None` if the platform's `Instant` cannot go back that far.
pub fn clock_zero(monotonic_now: Duration) -> Option<Instant> {
    Instant::now().checked_sub(monotonic_now)
}

/// The keys for this boot from `path`, made and stored there first if it
/// holds none (or another boot's). `Err` says why they could not be kept;
/// the caller then uses [`Secrets::random`].
pub fn secrets(path: &Path) -> Result<(Secrets, Kept), String> {
    let boot = std::fs::read_to_string(BOOT_ID).map_err(|e| format!("cannot read {BOOT_ID}: {e}"))?;
    secrets_for(path, boot.trim())
}

/// Whether the keys were found or made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    Found,
    Made,
}

fn secrets_for(path: &Path, boot: &str) -> Result<(Secrets, Kept), String> {
    // Another boot's file, or a damaged one, is replaced; one that cannot
    // be read is left alone (the caller keeps keys of its own).
    let replace = match std::fs::read_to_string(path) {
        Ok(text) => match parse(&text, boot) {
            Some(k) => return Ok((Secrets::from_bytes(k), Kept::Found)),
            None => true,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut k = [0u8; 32];
    getrandom::getrandom(&mut k).map_err(|e| format!("no random source: {e}"))?;
    let dir = path.parent().ok_or("the secrets path has no directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Written whole under a name of this process's own, then put in place:
    // a reader sees the old file or the new one, never half of one.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(format!("{boot} {}\n", hex(&k)).as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| {
            if replace {
                std::fs::rename(&tmp, path)
            } else {
                // Only if still absent: of two processes starting at once
                // on a fresh boot, the second takes the first's keys.
                std::fs::hard_link(&tmp, path)
            }
        });
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok((Secrets::from_bytes(k), Kept::Made)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let k = parse(&text, boot).ok_or_else(|| format!("{} was just written badly", path.display()))?;
            Ok((Secrets::from_bytes(k), Kept::Found))
        }
        Err(e) => Err(format!("cannot write {}: {e}", path.display())),
    }
}

/// `BOOT_ID HEX64`, for `boot`.
fn parse(text: &str, boot: &str) -> Option<[u8; 32]> {
    let (id, keys) = text.trim().split_once(' ')?;
    if id != boot || keys.len() != 64 {
        return None;
    }
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(keys.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(k)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FourTuple;
    use crate::time::Instant as EngineInstant;

    fn tuple() -> FourTuple {
        FourTuple::new("198.18.0.1:10000".parse().unwrap(), "198.18.2.10:80".parse().unwrap())
    }

    #[test]
    fn the_keys_outlive_the_process_for_the_boot_only() {
        let dir = std::env::temp_dir().join(format!("fg-boot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("secrets");
        let now = EngineInstant::from_secs(5000);
        let (a, kept) = secrets_for(&path, "boot-1").unwrap();
        assert_eq!(kept, Kept::Made);
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "the keys are the owner's only");
        // A second process of the same boot: the same keys, so the same
        // ISN and timestamp offset for a tuple at the same instant.
        let (b, kept) = secrets_for(&path, "boot-1").unwrap();
        assert_eq!(kept, Kept::Found);
        assert_eq!(a.isn(&tuple(), now), b.isn(&tuple(), now));
        // Another boot: new keys.
        let (c, kept) = secrets_for(&path, "boot-2").unwrap();
        assert_eq!(kept, Kept::Made);
        assert_ne!(a.isn(&tuple(), now), c.isn(&tuple(), now));
        // A damaged file is replaced, not trusted.
        std::fs::write(&path, "boot-2 zz\n").unwrap();
        assert_eq!(secrets_for(&path, "boot-2").unwrap().1, Kept::Made);
        // No file left behind under a temporary name.
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["secrets"], "{names:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_later_incarnation_of_a_tuple_starts_higher() {
        // What a peer's TIME-WAIT checks (RFC 6191): with the keys and the
        // clock of the boot, the next process's SYN for a tuple carries a
        // higher ISN and a newer timestamp than the last one's.
        let k = Secrets::from_bytes([9; 32]);
        let (old_isn, off) = k.isn(&tuple(), EngineInstant::from_secs(5000));
        let (new_isn, off2) = k.isn(&tuple(), EngineInstant::from_secs(5002));
        assert!(new_isn > old_isn + 100_000, "{old_isn:?} -> {new_isn:?}");
        assert_eq!(off, off2, "the timestamp offset is the tuple's; the clock moves it on");
    }

    #[test]
    fn the_clock_zero_is_the_boot() {
        let mono = crate::link::xdp::abi::monotonic_now();
        let zero = clock_zero(mono).expect("Instant reaches back to the boot on Linux");
        let since = zero.elapsed();
        assert!(since >= mono && since - mono < Duration::from_secs(1), "{since:?} against {mono:?}");
    }
}
