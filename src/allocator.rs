//! mimalloc, called through its plain entry points whenever the alignment
//! asked for is one every mimalloc block has (a word: block sizes are
//! multiples of it), which is nearly every allocation. The `mimalloc`
//! crate calls the aligned entry points for all of them, whose extra checks
//! showed in profiles of an admission, which allocates hundreds of small
//! values (docs/dev/performance.md).

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc, mi_zalloc_aligned,
};

pub struct MiMalloc;

/// The alignment of every block mimalloc hands out.
const WORD: usize = std::mem::size_of::<usize>();

// SAFETY: each method forwards to the mimalloc function of the same
// contract; the plain ones only where the layout's alignment is at most a
// word, which every mimalloc block has.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if layout.align() <= WORD {
                mi_malloc(layout.size()).cast()
            } else {
                mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if layout.align() <= WORD {
                mi_zalloc(layout.size()).cast()
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator.
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`'s alignment.
        unsafe {
            if layout.align() <= WORD {
                mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size and alignment gets a block of that alignment, which keeps
    /// its bytes when it grows or shrinks.
    #[test]
    fn blocks_are_aligned_and_keep_their_bytes() {
        let allocator = MiMalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in (1..=300).chain([1000, 4096, 70_000, 1 << 20]) {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size; every block is freed by the allocator that made it.
                unsafe {
                    let block = if size % 2 == 0 { allocator.alloc(layout) } else { allocator.alloc_zeroed(layout) };
                    assert!(!block.is_null() && block.addr() % align == 0, "{size} bytes aligned to {align}");
                    if size % 2 == 1 {
                        assert!(std::slice::from_raw_parts(block, size).iter().all(|&byte| byte == 0));
                    }
                    for at in 0..size {
                        block.add(at).write(at as u8);
                    }
                    let grown = allocator.realloc(block, layout, size * 3);
                    assert!(!grown.is_null() && grown.addr() % align == 0, "{size} grown, aligned to {align}");
                    assert!((0..size).all(|at| grown.add(at).read() == at as u8), "{size} grown");
                    let half = size / 2 + 1;
                    let shrunk = allocator.realloc(grown, Layout::from_size_align(size * 3, align).unwrap(), half);
                    assert!(!shrunk.is_null() && shrunk.addr() % align == 0, "{size} shrunk, aligned to {align}");
                    assert!((0..half).all(|at| shrunk.add(at).read() == at as u8), "{size} shrunk");
                    allocator.dealloc(shrunk, Layout::from_size_align(half, align).unwrap());
                }
            }
        }
    }
}
