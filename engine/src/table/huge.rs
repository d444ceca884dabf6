//! Huge pages for the big tables, and what the process actually got.
//!
//! A lookup at millions of entries is two random memory reads; with 4 KiB
//! pages each is also a TLB miss and a page walk. The tables and the timer
//! wheel's nodes ask for transparent huge pages (`madvise(MADV_HUGEPAGE)`,
//! which is what a kernel in THP `madvise` mode needs) before their pages
//! are first written. The buffer pool does not: a huge page would commit
//! 128 of its chunks at the first touch of one. The advice changes speed,
//! never behaviour: where THP is off or unavailable the same memory is
//! backed by small pages. [`HugePages::probe`] reads what the kernel offers
//! and [`memory_use`] what the process got, for the start-up log and the
//! metrics.

/// `n` copies of `value` in a vector asked to be backed by huge pages
/// before its pages are first written (the advice has to come before the
/// first touch: pages faulted in one 4 KiB page at a time stay so until
/// khugepaged gets round to them).
pub(crate) fn huge_vec<T: Clone>(n: usize, value: T) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    advise_huge_pages(v.as_ptr() as *const u8, n * core::mem::size_of::<T>());
    v.resize(n, value);
    v
}

/// Asks the kernel to back a large table with transparent huge pages.
///
/// A lookup at millions of entries is two random memory reads (bucket,
/// slot); with 4 KiB pages each also walks the page table, with 2 MiB pages
/// the TLB covers 1000 times more. On kernels where THP is `madvise`-only
/// this is what turns it on. Advice only: failure (or a non-Linux target)
/// changes speed, not behaviour.
pub(crate) fn advise_huge_pages(ptr: *const u8, bytes: usize) {
    const HUGE: usize = 2 << 20;
    if bytes < HUGE {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let page = 4096usize;
        let start = (ptr as usize + page - 1) & !(page - 1);
        let end = (ptr as usize + bytes) & !(page - 1);
        if end > start {
            // SAFETY: madvise with MADV_HUGEPAGE only changes how the kernel
            // backs pages of this mapping, which we own; it never changes
            // their contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = ptr;
}

/// What the kernel offers: the transparent huge page mode and page size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HugePages {
    /// `always`, `madvise` or `never` (the bracketed word of
    /// /sys/kernel/mm/transparent_hugepage/enabled), `unknown` where absent.
    pub thp: String,
    /// The huge page size in bytes (/proc/meminfo `Hugepagesize`), 0 if unknown.
    pub page_bytes: u64,
}

impl HugePages {
    pub fn probe() -> HugePages {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        HugePages { thp: thp_mode(thp.as_deref()), page_bytes: kib_field(&meminfo, "Hugepagesize:").unwrap_or(0) }
    }

    /// Whether the tables' advice can get them huge pages.
    pub fn usable(&self) -> bool {
        matches!(self.thp.as_str(), "always" | "madvise") && self.page_bytes > 0
    }
}

/// The selected mode of a `[always] madvise never` line.
fn thp_mode(line: Option<&str>) -> String {
    line.and_then(|l| l.split_whitespace().find(|w| w.starts_with('[')))
        .map(|w| w.trim_matches(['[', ']']).to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A `Name:   123 kB` field of /proc/meminfo or smaps_rollup, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// Resident bytes of this process and how many of them are on
/// transparent huge pages (/proc/self/smaps_rollup `Rss`, `AnonHugePages`).
pub fn memory_use() -> Option<(u64, u64)> {
    let r = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    Some((kib_field(&r, "Rss:")?, kib_field(&r, "AnonHugePages:").unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernels_words() {
        assert_eq!(thp_mode(Some("always [madvise] never\n")), "madvise");
        assert_eq!(thp_mode(Some("[always] madvise never")), "always");
        assert_eq!(thp_mode(None), "unknown");
        assert_eq!(thp_mode(Some("")), "unknown");
        let m = "MemTotal:       24000000 kB\nHugepagesize:       2048 kB\n";
        assert_eq!(kib_field(m, "Hugepagesize:"), Some(2 << 20));
        assert_eq!(kib_field(m, "AnonHugePages:"), None);
        let off = HugePages { thp: "never".into(), page_bytes: 2 << 20 };
        assert!(!off.usable());
        assert!(HugePages { thp: "madvise".into(), ..off }.usable());
    }

    #[test]
    fn a_big_advised_vector_is_filled_and_the_process_reads_its_own_use() {
        let v = huge_vec(4 << 20, 7u8);
        assert!(v.len() == 4 << 20 && v.iter().all(|&b| b == 7));
        if let Some((rss, huge)) = memory_use() {
            assert!(rss >= 4 << 20, "the vector is resident: {rss}");
            assert!(huge <= rss);
        }
    }
}
