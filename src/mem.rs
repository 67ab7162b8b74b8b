//! `memcmp` and `bcmp` for the static musl build, eight bytes at a time.
//!
//! The shipped binary is linked by Zig, whose compiler runtime supplies
//! `memcmp` and `bcmp` as loops over single bytes (musl's own `memcmp` is
//! one too). Every `==` on texts and every ordered key search goes through
//! them, and an admission compares a lot of text (the old and new copies of
//! a container, the keys of its maps). The runtime's definitions are weak,
//! so these take their place in the musl build only; a glibc build keeps
//! glibc's, which are vectorised already.

/// The order of `left` and `right` (of equal length) as `memcmp` gives it:
/// negative, zero or positive as the first byte that differs is lower or
/// higher in `left`.
pub fn compare(left: &[u8], right: &[u8]) -> i32 {
    // The keys of an ordered search mostly differ in their first byte.
    if let (Some(&a), Some(&b)) = (left.first(), right.first())
        && a != b
    {
        return i32::from(a) - i32::from(b);
    }
    let length = left.len().min(right.len());
    let mut at = 0;
    while at + 8 <= length {
        // Big-endian, so the first differing byte decides the order.
        let (a, b) = (word(left, at), word(right, at));
        if a != b {
            return if a < b { -1 } else { 1 };
        }
        at += 8;
    }
    while at < length {
        let (a, b) = (left[at], right[at]);
        if a != b {
            return i32::from(a) - i32::from(b);
        }
        at += 1;
    }
    0
}

/// Whether `left` and `right` (of equal length) differ, as `bcmp` answers:
/// zero when equal.
pub fn differ(left: &[u8], right: &[u8]) -> i32 {
    let length = left.len().min(right.len());
    let mut at = 0;
    while at + 32 <= length {
        let mut differ = 0;
        for offset in [0, 8, 16, 24] {
            differ |= word(left, at + offset) ^ word(right, at + offset);
        }
        if differ != 0 {
            return 1;
        }
        at += 32;
    }
    while at + 8 <= length {
        if word(left, at) != word(right, at) {
            return 1;
        }
        at += 8;
    }
    while at < length {
        if left[at] != right[at] {
            return 1;
        }
        at += 1;
    }
    0
}

fn word(bytes: &[u8], at: usize) -> u64 {
    let mut eight = [0; 8];
    for (index, byte) in eight.iter_mut().enumerate() {
        *byte = bytes[at + index];
    }
    u64::from_be_bytes(eight)
}

/// The `n` bytes at `left` and at `right`, as slices (none when `n` is 0:
/// the pointers may then be anything, null included).
///
/// # Safety
/// Each pointer is valid for reads of `n` bytes when `n` is not 0.
#[cfg(target_env = "musl")]
unsafe fn bytes<'a>(left: *const u8, right: *const u8, n: usize) -> Option<(&'a [u8], &'a [u8])> {
    // SAFETY: the caller's promise, for a length that is not 0.
    (n != 0).then(|| unsafe { (std::slice::from_raw_parts(left, n), std::slice::from_raw_parts(right, n)) })
}

/// # Safety
/// C's `memcmp`: both pointers valid for reads of `n` bytes.
#[cfg(target_env = "musl")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(left: *const u8, right: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's promise, passed on.
    unsafe { bytes(left, right, n) }.map_or(0, |(left, right)| compare(left, right))
}

/// # Safety
/// C's `bcmp`: both pointers valid for reads of `n` bytes.
#[cfg(target_env = "musl")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(left: *const u8, right: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's promise, passed on.
    unsafe { bytes(left, right, n) }.map_or(0, |(left, right)| differ(left, right))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sign of the order and the equality of every pair, lengths 0 to
    /// 80 (every tail of the word loops), differing anywhere or nowhere,
    /// against the slices' own comparison.
    #[test]
    fn the_order_and_equality_are_those_of_the_bytes() {
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..100_000 {
            let length = rng.usize(..80);
            let left: Vec<u8> = (0..length).map(|_| rng.u8(..)).collect();
            let mut right = left.clone();
            if length > 0 && rng.bool() {
                let at = rng.usize(..length);
                right[at] = rng.u8(..);
                if rng.bool() && at + 1 < length {
                    right[at + 1..].iter_mut().for_each(|byte| *byte = rng.u8(..));
                }
            }
            let expected = left.cmp(&right) as i32;
            assert_eq!(compare(&left, &right).signum(), expected, "{left:?} {right:?}");
            assert_eq!(differ(&left, &right) != 0, left != right, "{left:?} {right:?}");
        }
        assert_eq!(compare(b"ab\x80", b"ab\x7f"), 1, "bytes compare unsigned");
        assert_eq!(compare(b"", b""), 0);
    }
}
