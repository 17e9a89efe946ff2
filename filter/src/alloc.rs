//! The module's allocator: the standard one (dlmalloc on wasm32), with a free list per size
//! class in front of it for small blocks.
//!
//! A request allocates and frees a few hundred small blocks: strings, the nodes of its value
//! trees, vectors. dlmalloc searches its bins for each of them and coalesces each one freed; a
//! block freed here goes on the list of its size class instead, and the next request of that
//! class takes it back in a few instructions (a checkout's instructions in the module: 7% fewer,
//! `cargo xtask bench --instructions`). Each list keeps at most `KEPT_PER_CLASS` bytes, so that
//! the lists together hold at most a MiB that dlmalloc could have given to blocks of other
//! sizes. Larger blocks, those aligned beyond dlmalloc's own alignment, and what a full list
//! cannot keep, go to dlmalloc as before.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

// The lists are shared without a lock: sound only while the module has one thread.
#[cfg(target_feature = "atomics")]
compile_error!("the allocator's free lists are not thread-safe: build the module without atomics");

/// Sizes are rounded up to a multiple of this.
const GRAIN: usize = 16;
/// The alignment of every class: dlmalloc's own on wasm32, which it gives without the extra
/// work a larger one costs it. Layouts that ask for more go to dlmalloc.
const ALIGN: usize = 8;
/// The largest size a class holds.
const LARGEST: usize = 1024;
const CLASSES: usize = LARGEST / GRAIN;
/// The most a class keeps on its list, in bytes.
const KEPT_PER_CLASS: usize = 16 * 1024;

struct Lists {
    /// The first free block of each class; a free block's first word points to the next.
    heads: [*mut u8; CLASSES],
    /// How many blocks each list holds.
    lengths: [usize; CLASSES],
}

/// The free lists, in front of `A` (the standard allocator, but in tests).
pub struct Allocator<A = System> {
    backing: A,
    lists: UnsafeCell<Lists>,
}

// wasm32 without atomics (see above): one thread ever touches the lists.
unsafe impl<A: Sync> Sync for Allocator<A> {}

impl Allocator<System> {
    pub const fn new() -> Allocator<System> {
        Allocator::over(System)
    }
}

impl<A> Allocator<A> {
    const fn over(backing: A) -> Allocator<A> {
        Allocator {
            backing,
            lists: UnsafeCell::new(Lists { heads: [ptr::null_mut(); CLASSES], lengths: [0; CLASSES] }),
        }
    }
}

/// The class of a block of this layout, if it is small enough for one.
fn class(layout: Layout) -> Option<usize> {
    if layout.size() == 0 || layout.size() > LARGEST || layout.align() > ALIGN {
        return None;
    }
    Some((layout.size() - 1) / GRAIN)
}

/// The size of every block of a class.
fn class_size(class: usize) -> usize {
    (class + 1) * GRAIN
}

/// The layout the backing allocator gives every block of a class.
fn class_layout(class: usize) -> Layout {
    // At most LARGEST, and ALIGN is a power of two.
    unsafe { Layout::from_size_align_unchecked(class_size(class), ALIGN) }
}

unsafe impl<A: GlobalAlloc> GlobalAlloc for Allocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class(layout) else { return self.backing.alloc(layout) };
        let lists = &mut *self.lists.get();
        let head = lists.heads[class];
        if head.is_null() {
            return self.backing.alloc(class_layout(class));
        }
        lists.heads[class] = head.cast::<*mut u8>().read();
        lists.lengths[class] -= 1;
        head
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(class) = class(layout) else { return self.backing.dealloc(block, layout) };
        let lists = &mut *self.lists.get();
        if (lists.lengths[class] + 1) * class_size(class) > KEPT_PER_CLASS {
            return self.backing.dealloc(block, class_layout(class));
        }
        block.cast::<*mut u8>().write(lists.heads[class]);
        lists.heads[class] = block;
        lists.lengths[class] += 1;
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class(layout) else { return self.backing.alloc_zeroed(layout) };
        if (*self.lists.get()).heads[class].is_null() {
            // Fresh memory dlmalloc may know to be zero already.
            return self.backing.alloc_zeroed(class_layout(class));
        }
        let block = self.alloc(layout);
        block.write_bytes(0, layout.size());
        block
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        match (class(layout), class(new_layout)) {
            // The block already has room, and stays in its class.
            (Some(old), Some(new)) if old == new => block,
            (None, None) => self.backing.realloc(block, layout, new_size),
            _ => {
                let moved = self.alloc(new_layout);
                if !moved.is_null() {
                    ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                    self.dealloc(block, layout);
                }
                moved
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// The standard allocator, checking that every block comes back with the layout it was
    /// given with, as dlmalloc on wasm32 requires.
    #[derive(Default)]
    struct Checked {
        live: RefCell<HashMap<usize, Layout>>,
    }

    impl Checked {
        fn given(&self, block: *mut u8, layout: Layout) -> *mut u8 {
            assert!(!block.is_null());
            assert_eq!(block as usize % layout.align(), 0, "{layout:?}");
            self.live.borrow_mut().insert(block as usize, layout);
            block
        }

        fn taken(&self, block: *mut u8, layout: Layout) {
            assert_eq!(
                self.live.borrow_mut().remove(&(block as usize)),
                Some(layout),
                "freed with another layout"
            );
        }
    }

    unsafe impl GlobalAlloc for Checked {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            self.given(System.alloc(layout), layout)
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            self.given(System.alloc_zeroed(layout), layout)
        }

        unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
            self.taken(block, layout);
            System.dealloc(block, layout)
        }

        unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            self.taken(block, layout);
            let moved = System.realloc(block, layout, new_size);
            self.given(moved, Layout::from_size_align_unchecked(new_size, layout.align()))
        }
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    fn kept<A>(allocator: &Allocator<A>) -> [usize; CLASSES] {
        unsafe { (*allocator.lists.get()).lengths }
    }

    /// Gives every block the lists keep back to the backing allocator, with its class's layout.
    fn drain<A: GlobalAlloc>(allocator: &Allocator<A>) {
        let lists = unsafe { &mut *allocator.lists.get() };
        for class in 0..CLASSES {
            while !lists.heads[class].is_null() {
                let block = lists.heads[class];
                unsafe {
                    lists.heads[class] = block.cast::<*mut u8>().read();
                    allocator.backing.dealloc(block, class_layout(class));
                }
                lists.lengths[class] -= 1;
            }
        }
    }

    #[test]
    fn a_freed_small_block_is_the_next_one_of_its_class_and_keeps_nothing_of_its_own() {
        let allocator = Allocator::over(Checked::default());
        for size in [1, 15, 16, 17, 100, 632, 1024] {
            let other_of_class = (size - 1) / GRAIN * GRAIN + 1;
            unsafe {
                let first = allocator.alloc(layout(size, 8));
                first.write_bytes(0xAB, size);
                allocator.dealloc(first, layout(size, 8));
                assert_eq!(kept(&allocator)[(size - 1) / GRAIN], 1, "{size}");
                let again = allocator.alloc(layout(other_of_class, 1));
                assert_eq!(again, first, "{size}");
                allocator.dealloc(again, layout(other_of_class, 1));
                let zeroed = allocator.alloc_zeroed(layout(size, 8));
                assert_eq!(zeroed, first);
                assert!(std::slice::from_raw_parts(zeroed, size).iter().all(|&b| b == 0), "{size}");
                allocator.dealloc(zeroed, layout(size, 8));
            }
        }
    }

    #[test]
    fn large_and_overaligned_blocks_go_to_the_backing_allocator_as_they_are() {
        let allocator = Allocator::over(Checked::default());
        unsafe {
            for (size, align) in [(1025, 8), (64 * 1024, 8), (64, 16), (8, 4096)] {
                let block = allocator.alloc(layout(size, align));
                assert_eq!(
                    allocator.backing.live.borrow().get(&(block as usize)),
                    Some(&layout(size, align))
                );
                block.write_bytes(1, size);
                allocator.dealloc(block, layout(size, align));
            }
        }
        assert!(kept(&allocator).iter().all(|&n| n == 0));
        assert!(allocator.backing.live.borrow().is_empty());
    }

    #[test]
    fn a_list_keeps_at_most_its_share_and_the_backing_allocator_takes_the_rest() {
        let allocator = Allocator::over(Checked::default());
        // Sizes below their class's, so that a block freed with the size asked for, rather than
        // its class's, would show.
        for size in [30, 40, 1000] {
            let blocks: Vec<*mut u8> =
                (0..2000).map(|_| unsafe { allocator.alloc(layout(size, 8)) }).collect();
            for block in blocks {
                unsafe { allocator.dealloc(block, layout(size, 8)) };
            }
            let class = (size - 1) / GRAIN;
            assert_eq!(kept(&allocator)[class], KEPT_PER_CLASS / class_size(class), "{size}");
            // What the list keeps is the backing allocator's still, with the class's layout.
            assert_eq!(allocator.backing.live.borrow().len(), KEPT_PER_CLASS / class_size(class), "{size}");
            assert!(allocator.backing.live.borrow().values().all(|l| *l == class_layout(class)));
            drain(&allocator);
            assert!(allocator.backing.live.borrow().is_empty());
        }
    }

    /// Allocations, reallocations across every boundary and frees, at random: contents and
    /// alignment hold, and every block reaches the backing allocator with its own layout.
    #[test]
    fn any_sequence_keeps_contents_alignment_and_layouts() {
        let allocator = Allocator::over(Checked::default());
        run_at_random(&allocator);
        // All that is left with the backing allocator is what the lists keep, each block of
        // the layout of the list it is on.
        let kept: usize = kept(&allocator).iter().sum();
        assert_eq!(allocator.backing.live.borrow().len(), kept);
        drain(&allocator);
        assert!(allocator.backing.live.borrow().is_empty());
        // And the module's own, in front of the standard allocator.
        run_at_random(&Allocator::new());
    }

    fn run_at_random<A: GlobalAlloc>(allocator: &Allocator<A>) {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = |below: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below as u64) as usize
        };
        let sizes = [1, 7, 8, 15, 16, 17, 31, 100, 640, 1023, 1024, 1025, 3000];
        let aligns = [1, 2, 4, 8, 16, 32];
        // (block, layout, the byte it is filled with)
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        let filled = |block: *mut u8, size: usize, byte: u8| unsafe {
            std::slice::from_raw_parts(block, size).iter().all(|&b| b == byte)
        };
        for step in 0..20_000 {
            let byte = (step % 251) as u8;
            match next(4) {
                0 | 1 if live.len() < 300 => unsafe {
                    let wanted = layout(sizes[next(sizes.len())], aligns[next(aligns.len())]);
                    let zeroed = next(2) == 0;
                    let block = if zeroed { allocator.alloc_zeroed(wanted) } else { allocator.alloc(wanted) };
                    assert_eq!(block as usize % wanted.align(), 0, "{wanted:?}");
                    if zeroed {
                        assert!(filled(block, wanted.size(), 0), "{wanted:?}");
                    }
                    block.write_bytes(byte, wanted.size());
                    live.push((block, wanted, byte));
                },
                2 if !live.is_empty() => unsafe {
                    let (block, old, fill) = live.swap_remove(next(live.len()));
                    let new_size = sizes[next(sizes.len())];
                    let moved = allocator.realloc(block, old, new_size);
                    assert_eq!(moved as usize % old.align(), 0);
                    assert!(filled(moved, old.size().min(new_size), fill), "{old:?} -> {new_size}");
                    moved.write_bytes(fill, new_size);
                    live.push((moved, layout(new_size, old.align()), fill));
                },
                _ if !live.is_empty() => unsafe {
                    let (block, wanted, fill) = live.swap_remove(next(live.len()));
                    assert!(filled(block, wanted.size(), fill), "{wanted:?}");
                    allocator.dealloc(block, wanted);
                },
                _ => {}
            }
        }
        for (block, wanted, _) in live {
            unsafe { allocator.dealloc(block, wanted) };
        }
    }
}
