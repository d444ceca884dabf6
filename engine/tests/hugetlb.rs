//! Reserved huge pages for the big tables (`table::mapped`): where the
//! operator reserved pages (`vm.nr_hugepages`), the connection slab, the
//! index and the timer nodes take them; where the pool is short or empty
//! the same tables work on ordinary pages. Needs root (the test reserves
//! pages for itself and gives them back); skips loudly otherwise, never
//! under CI=true. A process of its own, so no other test takes the pages.

mod xdp_common;

use std::net::SocketAddr;

use floodgate::flow::FourTuple;
use floodgate::table::huge::{memory_use, HugePages};
use floodgate::table::mapped::hugetlb_bytes;
use floodgate::table::ConnTable;
use floodgate::timer::Wheel;

const NR: &str = "/proc/sys/vm/nr_hugepages";

/// Sets the reserved pool to `pages` and gives the old size back on drop.
struct Reserve {
    before: u64,
}

impl Reserve {
    fn to(pages: u64) -> Reserve {
        let before = std::fs::read_to_string(NR).unwrap().trim().parse().unwrap();
        std::fs::write(NR, pages.to_string()).unwrap();
        Reserve { before }
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        let _ = std::fs::write(NR, self.before.to_string());
    }
}

fn tuple(i: u32) -> FourTuple {
    let local: SocketAddr = "198.18.0.1:80".parse().unwrap();
    let remote = SocketAddr::from(([198, 19, (i >> 16) as u8, (i >> 8) as u8], 1024 + (i & 0xff) as u16));
    FourTuple::new(local, remote)
}

/// Fills `n` connections and reads every one back.
fn fill_and_read(t: &mut ConnTable<u32>, n: u32) {
    for i in 0..n {
        t.insert(tuple(i), i).expect("room in the table");
    }
    for i in 0..n {
        let h = t.lookup(&tuple(i)).expect("inserted");
        assert_eq!(t.get(h), Some(&i));
    }
}

#[test]
fn tables_take_reserved_huge_pages_and_work_without_them() {
    if !xdp_common::require_root("hugetlb::tables_take_reserved_huge_pages_and_work_without_them") {
        return;
    }
    let page = HugePages::probe().page_bytes;
    assert!(page > 0, "the kernel names its huge page size");
    // A slab and an index for 200,000 connections and 4 MB of timer nodes
    // (about 18 MiB), against 64 MiB of reserved pages.
    let pool = 64u64 << 20;
    let want = pool / page;
    let _reserve = Reserve::to(want);
    let got = HugePages::probe();
    if got.free_pages * page < 24 << 20 {
        panic!("the kernel reserved only {} of {want} huge pages (memory too fragmented?)", got.free_pages);
    }
    assert_eq!(hugetlb_bytes(), 0);
    let mut t: ConnTable<u32> = ConnTable::with_capacity_and_seed(200_000, 7);
    let wheel = Wheel::new(200_000, 0);
    let mapped = hugetlb_bytes();
    assert!(mapped >= t.memory_bytes() as u64, "the slab and index sit on reserved pages: {mapped} B");
    t.prefault();
    fill_and_read(&mut t, 200_000);
    let m = memory_use().expect("smaps_rollup");
    eprintln!("on reserved huge pages: {} MiB mapped, {m:?}", mapped >> 20);
    assert!(m.hugetlb >= t.memory_bytes() as u64, "the kernel counts them as ours: {m:?}");
    assert!(m.resident >= m.hugetlb, "resident memory includes them: {m:?}");
    assert!(HugePages::probe().free_pages < got.free_pages, "the pool gave pages");
    drop((t, wheel));
    assert_eq!(hugetlb_bytes(), 0, "every page handed back");

    // A table bigger than the pool: its slab falls back to ordinary pages
    // (the index may still fit), same behaviour.
    let mut big: ConnTable<u32> = ConnTable::with_capacity_and_seed(2_000_000, 8);
    assert!(big.memory_bytes() as u64 > pool);
    assert!(hugetlb_bytes() <= pool, "no more than the pool: {}", hugetlb_bytes());
    fill_and_read(&mut big, 2_000_000);
}
