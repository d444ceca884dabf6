//! Huge pages for the big tables, and what the process actually got.
//!
//! A lookup at millions of entries is two random memory reads; with 4 KiB
//! pages each is also a TLB miss and a page walk. The tables and the timer
//! wheel's nodes (each on its own mapping, [`super::mapped`]) take reserved
//! huge pages where the operator reserved some, and otherwise ask for
//! transparent huge pages (`madvise(MADV_HUGEPAGE)`, which is what a kernel
//! in THP `madvise` mode needs) before their pages are first written (the
//! advice has to come before the first touch: pages faulted in one 4 KiB
//! page at a time stay so until khugepaged gets round to them). The buffer
//! pool does not: a huge page would commit 128 of its chunks at the first
//! touch of one. The advice changes speed, never behaviour: where THP is off
//! or unavailable the same memory is backed by small pages. [`HugePages::probe`] reads what the kernel offers
//! and [`memory_use`] what the process got, for the start-up log and the
//! metrics.

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

/// What the kernel offers: the transparent huge page mode and page size,
/// and the pool of reserved huge pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HugePages {
    /// `always`, `madvise` or `never` (the bracketed word of
    /// /sys/kernel/mm/transparent_hugepage/enabled), `unknown` where absent.
    pub thp: String,
    /// The huge page size in bytes (/proc/meminfo `Hugepagesize`), 0 if unknown.
    pub page_bytes: u64,
    /// Pages the operator reserved (`vm.nr_hugepages`, /proc/meminfo
    /// `HugePages_Total`) and how many of them are free.
    pub reserved_pages: u64,
    pub free_pages: u64,
}

impl HugePages {
    pub fn probe() -> HugePages {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        HugePages {
            thp: thp_mode(thp.as_deref()),
            page_bytes: kib_field(&meminfo, "Hugepagesize:").unwrap_or(0),
            reserved_pages: count_field(&meminfo, "HugePages_Total:").unwrap_or(0),
            free_pages: count_field(&meminfo, "HugePages_Free:").unwrap_or(0),
        }
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
    Some(field(text, name)?.trim_end_matches("kB").trim().parse::<u64>().ok()? * 1024)
}

/// A `Name:   123` field of /proc/meminfo.
fn count_field(text: &str, name: &str) -> Option<u64> {
    field(text, name)?.parse().ok()
}

fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    Some(text.lines().find(|l| l.starts_with(name))?[name.len()..].trim())
}

/// What this process holds in memory (/proc/self/smaps_rollup).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryUse {
    /// Resident bytes: `Rss` plus `Private_Hugetlb` (reserved huge pages
    /// are not counted in `Rss`).
    pub resident: u64,
    /// Of them, on transparent huge pages (`AnonHugePages`).
    pub thp: u64,
    /// Of them, on reserved huge pages (`Private_Hugetlb`).
    pub hugetlb: u64,
}

pub fn memory_use() -> Option<MemoryUse> {
    let r = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let hugetlb = kib_field(&r, "Private_Hugetlb:").unwrap_or(0);
    Some(MemoryUse {
        resident: kib_field(&r, "Rss:")? + hugetlb,
        thp: kib_field(&r, "AnonHugePages:").unwrap_or(0),
        hugetlb,
    })
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
        let m = "HugePages_Total:     512\nHugePages_Free:      500\n";
        assert_eq!((count_field(m, "HugePages_Total:"), count_field(m, "HugePages_Free:")), (Some(512), Some(500)));
        let off = HugePages { thp: "never".into(), page_bytes: 2 << 20, reserved_pages: 0, free_pages: 0 };
        assert!(!off.usable());
        assert!(HugePages { thp: "madvise".into(), ..off }.usable());
    }

    #[test]
    fn a_big_vector_is_filled_and_the_process_reads_its_own_use() {
        let v = super::super::mapped::Mapped::filled(4 << 20, 7u8);
        assert!(v.len() == 4 << 20 && v.iter().all(|&b| b == 7));
        if let Some(m) = memory_use() {
            assert!(m.resident >= 4 << 20, "the vector is resident: {m:?}");
            assert!(m.thp + m.hugetlb <= m.resident, "{m:?}");
        }
    }
}
