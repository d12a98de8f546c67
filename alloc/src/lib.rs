//! planb's global allocator (both binaries): mimalloc, asked the way C's
//! `malloc` callers ask it.
//!
//! The `mimalloc` crate's allocator passes every request to
//! `mi_malloc_aligned`, and mimalloc 3 serves an aligned request above 1 KiB
//! (hyper's and Pingora's buffers, header maps) or off its fast path by
//! over-allocating: about 700 instructions of the backend's cached
//! `GET /api/me` and 2,900 of a proxied request under callgrind
//! (purpleprotocol/mimalloc_rust#170). This asks for the alignment only when
//! `mi_malloc`'s own does not give it: mimalloc, like any C `malloc`, aligns
//! every block to the fundamental alignment (16 bytes), or to its size when
//! smaller — the rule Rust's `System` allocator relies on with glibc.
//!
//! ```text
//! #[global_allocator]
//! static ALLOC: planb_alloc::MiMalloc = planb_alloc::MiMalloc;
//! ```

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment `mi_malloc` gives any block of at least this size
/// (mimalloc's `MI_MAX_ALIGN_SIZE`, C's `alignof(max_align_t)` on x86-64 and aarch64).
const MALLOC_ALIGN: usize = 16;

/// mimalloc as the global allocator (`#[global_allocator]` in each binary's `main.rs`).
pub struct MiMalloc;

/// Whether `mi_malloc(size)` is aligned enough for `align`.
fn malloc_aligns(size: usize, align: usize) -> bool {
    align <= MALLOC_ALIGN && align <= size
}

// SAFETY: every block comes from mimalloc and goes back to it; the plain calls
// are used only where mimalloc's guaranteed alignment covers the layout's.
unsafe impl GlobalAlloc for MiMalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        let p = if malloc_aligns(size, align) {
            unsafe { mi::mi_malloc(size) }
        } else {
            unsafe { mi::mi_malloc_aligned(size, align) }
        };
        p.cast()
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        let p = if malloc_aligns(size, align) {
            unsafe { mi::mi_zalloc(size) }
        } else {
            unsafe { mi::mi_zalloc_aligned(size, align) }
        };
        p.cast()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        let p = if malloc_aligns(new_size, align) {
            unsafe { mi::mi_realloc(ptr.cast::<c_void>(), new_size) }
        } else {
            unsafe { mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, align) }
        };
        p.cast()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allocates, writes and frees `layout` through [`MiMalloc`] and checks the alignment.
    fn round_trip(layout: Layout) {
        let a = MiMalloc;
        unsafe {
            for zeroed in [false, true] {
                let p = if zeroed {
                    a.alloc_zeroed(layout)
                } else {
                    a.alloc(layout)
                };
                assert!(!p.is_null(), "{layout:?}");
                assert_eq!(p as usize % layout.align(), 0, "{layout:?}");
                if zeroed {
                    assert!((0..layout.size()).all(|i| *p.add(i) == 0), "{layout:?}");
                }
                p.write_bytes(0xa5, layout.size());
                let bigger = layout.size() * 3 + 1;
                let q = a.realloc(p, layout, bigger);
                assert_eq!(q as usize % layout.align(), 0, "{layout:?} grown");
                assert!(
                    (0..layout.size()).all(|i| *q.add(i) == 0xa5),
                    "{layout:?} kept"
                );
                a.dealloc(q, Layout::from_size_align(bigger, layout.align()).unwrap());
            }
        }
    }

    #[test]
    fn every_size_and_alignment_comes_back_aligned() {
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in [1, 3, 8, 15, 16, 24, 48, 100, 1000, 1025, 1500, 4097, 70_000] {
                round_trip(Layout::from_size_align(size, align).unwrap());
            }
        }
    }

    #[test]
    fn only_what_malloc_aligns_skips_the_aligned_call() {
        assert!(malloc_aligns(1500, 8));
        assert!(malloc_aligns(16, 16));
        assert!(!malloc_aligns(8, 16), "an 8-byte block is 8-aligned");
        assert!(!malloc_aligns(4096, 64));
    }
}
