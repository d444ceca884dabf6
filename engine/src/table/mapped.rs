//! A fixed-capacity vector on a mapping of its own, for the big tables.
//!
//! The connection slab, the index buckets, the TIME-WAIT ring and the timer
//! nodes are sized once at start and never grow. Each sits on its own
//! anonymous mapping, so that how the mapping is backed can be chosen:
//!
//! - **reserved huge pages** (`MAP_HUGETLB`) when the operator reserved
//!   some (`vm.nr_hugepages`) and the table is at least one huge page: the
//!   kernel sets the pages aside when the mapping is made, so a shortfall is
//!   an mmap error at start (and a fallback), never a fault later;
//! - otherwise ordinary pages with transparent huge page advice
//!   (`madvise(MADV_HUGEPAGE)` before the first write, see [`super::huge`]),
//!   which works everywhere and changes speed, never behaviour.
//!
//! Either way the memory starts zeroed and is committed page by page as it is
//! first written (reserved huge pages are committed at the mapping). How many
//! bytes of the process sit on reserved pages is [`hugetlb_bytes`], logged at
//! start and exported.

use core::marker::PhantomData;
use core::mem::{size_of, MaybeUninit};
use core::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of this process's tables on reserved huge pages, now.
static HUGETLB: AtomicU64 = AtomicU64::new(0);

/// Bytes of the tables currently mapped from the reserved huge page pool.
pub fn hugetlb_bytes() -> u64 {
    HUGETLB.load(Ordering::Relaxed)
}

/// How a [`Mapped`] is backed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// Reserved huge pages (`MAP_HUGETLB`), committed at the mapping.
    Reserved,
    /// Ordinary pages, asked for transparent huge pages where the table is
    /// big enough (the kernel decides).
    Advised,
}

/// A vector of at most `capacity` elements on its own mapping: `push` never
/// reallocates (past the capacity it is a caller bug, refused), so element
/// addresses are stable and the per-packet path never allocates.
pub struct Mapped<T> {
    ptr: NonNull<T>,
    len: usize,
    cap: usize,
    /// Length of the mapping (0: nothing mapped, `cap` or `T` is zero-sized).
    map_len: usize,
    backing: Backing,
    _owns: PhantomData<T>,
}

// SAFETY: a Mapped owns its elements exclusively, like a Vec.
unsafe impl<T: Send> Send for Mapped<T> {}
// SAFETY: shared access only hands out shared references to the elements.
unsafe impl<T: Sync> Sync for Mapped<T> {}

impl<T> Mapped<T> {
    /// An empty vector with room for `cap` elements, zeroed memory behind it.
    pub fn with_capacity(cap: usize) -> Mapped<T> {
        let bytes = cap.checked_mul(size_of::<T>()).expect("table size overflows the address space");
        let (ptr, map_len, backing) = map(bytes);
        let ptr = if map_len == 0 { NonNull::dangling() } else { ptr.cast::<T>() };
        Mapped { ptr, len: 0, cap, map_len, backing, _owns: PhantomData }
    }

    /// `n` copies of `value`.
    pub fn filled(n: usize, value: T) -> Mapped<T>
    where
        T: Clone,
    {
        let mut v = Mapped::with_capacity(n);
        for _ in 0..n {
            let _ = v.push(value.clone()); // n = the capacity: always room
        }
        v
    }

    /// `n` elements of all-zero bytes, without writing them: the pages stay
    /// uncommitted until first touched, as with calloc.
    ///
    /// # Safety
    /// All-zero bytes must be a valid `T`.
    pub unsafe fn zeroed(n: usize) -> Mapped<T> {
        let mut v = Mapped::with_capacity(n);
        v.len = n;
        v
    }

    /// Appends `value`. Past the capacity nothing is written and the value
    /// is handed back.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if self.len == self.cap {
            return Err(value);
        }
        // SAFETY: len < cap, so the slot lies inside the mapping.
        unsafe { self.ptr.as_ptr().add(self.len).write(value) };
        self.len += 1;
        Ok(())
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    pub fn backing(&self) -> Backing {
        self.backing
    }

    /// The unused tail, as `Vec::spare_capacity_mut`.
    pub fn spare_capacity_mut(&mut self) -> &mut [MaybeUninit<T>] {
        // SAFETY: the elements len..cap lie inside the mapping and are not
        // initialised values of T as far as the caller may assume.
        unsafe {
            core::slice::from_raw_parts_mut(self.ptr.as_ptr().add(self.len) as *mut MaybeUninit<T>, self.cap - self.len)
        }
    }
}

impl<T> core::ops::Deref for Mapped<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: the first len elements are initialised and inside the mapping.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> core::ops::DerefMut for Mapped<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for deref, and &mut self is exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for Mapped<T> {
    fn drop(&mut self) {
        // SAFETY: the first len elements are initialised; each is dropped once.
        unsafe { core::ptr::drop_in_place(&mut **self as *mut [T]) };
        if self.map_len > 0 {
            unmap(self.ptr.cast::<u8>(), self.map_len, self.backing);
        }
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for Mapped<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mapped")
            .field("len", &self.len)
            .field("cap", &self.cap)
            .field("backing", &self.backing)
            .finish()
    }
}

/// The reserved pool's page size, if the operator reserved any pages
/// (`HugePages_Total` > 0 in /proc/meminfo). Read once.
fn reserved_page() -> Option<usize> {
    static PAGE: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        let p = super::huge::HugePages::probe();
        (p.reserved_pages > 0 && p.page_bytes > 0).then_some(p.page_bytes as usize)
    })
}

/// Maps `bytes` of zeroed memory: reserved huge pages where there are
/// reserved pages and the table fills at least one, else ordinary pages with
/// huge page advice. Returns the start, the mapping's length (0 when nothing
/// was mapped: `bytes` is 0) and the backing.
#[cfg(target_os = "linux")]
fn map(bytes: usize) -> (NonNull<u8>, usize, Backing) {
    if bytes == 0 {
        return (NonNull::dangling(), 0, Backing::Advised);
    }
    if let Some(page) = reserved_page().filter(|&p| bytes >= p) {
        let len = bytes.div_ceil(page) * page;
        if let Some(p) = mmap(len, libc::MAP_HUGETLB) {
            HUGETLB.fetch_add(len as u64, Ordering::Relaxed);
            return (p, len, Backing::Reserved);
        }
        // Not enough reserved pages left (other tables, other processes):
        // ordinary pages do the same job.
    }
    let len = bytes.div_ceil(4096) * 4096;
    let p = mmap(len, 0)
        .unwrap_or_else(|| panic!("cannot map {len} bytes for a table: {}", std::io::Error::last_os_error()));
    super::huge::advise_huge_pages(p.as_ptr(), len);
    (p, len, Backing::Advised)
}

#[cfg(target_os = "linux")]
fn mmap(len: usize, flags: libc::c_int) -> Option<NonNull<u8>> {
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing touches no existing memory.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then(|| NonNull::new(p as *mut u8)).flatten()
}

#[cfg(target_os = "linux")]
fn unmap(p: NonNull<u8>, len: usize, backing: Backing) {
    // SAFETY: p..p+len is a mapping this module made and nothing refers to
    // it any more (its owner is being dropped).
    unsafe { libc::munmap(p.as_ptr() as *mut libc::c_void, len) };
    if backing == Backing::Reserved {
        HUGETLB.fetch_sub(len as u64, Ordering::Relaxed);
    }
}

#[cfg(not(target_os = "linux"))]
fn map(bytes: usize) -> (NonNull<u8>, usize, Backing) {
    if bytes == 0 {
        return (NonNull::dangling(), 0, Backing::Advised);
    }
    let layout = std::alloc::Layout::from_size_align(bytes, 4096).expect("table layout");
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    (NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout)), bytes, Backing::Advised)
}

#[cfg(not(target_os = "linux"))]
fn unmap(p: NonNull<u8>, len: usize, _: Backing) {
    let layout = std::alloc::Layout::from_size_align(len, 4096).expect("table layout");
    // SAFETY: allocated by map with this layout.
    unsafe { std::alloc::dealloc(p.as_ptr(), layout) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn pushes_up_to_its_capacity_and_hands_back_the_rest() {
        let mut v: Mapped<u32> = Mapped::with_capacity(3);
        assert_eq!((v.len(), v.capacity()), (0, 3));
        assert_eq!(v.spare_capacity_mut().len(), 3);
        for i in 0..3 {
            assert!(v.push(i).is_ok());
        }
        assert_eq!(v.push(9), Err(9));
        v[1] = 7;
        assert_eq!(&v[..], &[0, 7, 2]);
        assert!(v.spare_capacity_mut().is_empty());
    }

    #[test]
    fn drops_what_it_holds_once() {
        let counted = Rc::new(());
        let v = Mapped::filled(5, counted.clone());
        assert_eq!(Rc::strong_count(&counted), 6);
        drop(v);
        assert_eq!(Rc::strong_count(&counted), 1);
    }

    #[test]
    fn empty_and_zeroed_vectors() {
        let e: Mapped<u64> = Mapped::with_capacity(0);
        assert!(e.is_empty());
        // SAFETY: zero is a valid u64.
        let z: Mapped<u64> = unsafe { Mapped::zeroed(1 << 20) };
        assert_eq!(z.len(), 1 << 20);
        assert!(z.iter().step_by(4096).all(|&x| x == 0));
        let big: Mapped<u8> = Mapped::filled(3 << 20, 5);
        assert!(big.iter().all(|&b| b == 5));
        // Without a reserved pool (the usual case) it is advised; with one,
        // 3 MiB takes two 2 MiB pages, counted while they are held.
        if big.backing() == Backing::Reserved {
            assert!(hugetlb_bytes() >= 4 << 20);
        }
    }
}
