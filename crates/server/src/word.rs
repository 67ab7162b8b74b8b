//! Text eight bytes at a time, as one `u64`: which of its bytes are a
//! given byte, or below a limit. Only the lowest flagged byte is exact (a
//! borrow can flag bytes above it), which is all a scan up to the next
//! byte of interest needs.

const ONES: u64 = u64::from_ne_bytes([1; 8]);
const HIGH: u64 = ONES << 7;

/// The eight bytes of `text` at `at`, when there are eight.
pub fn at(text: &[u8], at: usize) -> Option<u64> {
    text.get(at..)?.first_chunk::<8>().map(|bytes| u64::from_le_bytes(*bytes))
}

/// The bytes of `word` equal to `byte` (the "has a zero byte" test).
pub fn equal(word: u64, byte: u8) -> u64 {
    let differ = word ^ (ONES * u64::from(byte));
    differ.wrapping_sub(ONES) & !differ & HIGH
}

/// The bytes of `word` below `limit` (at most 0x80).
pub fn below(word: u64, limit: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(limit)) & !word & HIGH
}

/// Where in the word the lowest flagged byte is (`flags` not zero).
pub fn first(flags: u64) -> usize {
    flags.trailing_zeros() as usize / 8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lowest flagged byte is the first matching one, wherever the
    /// matching bytes are and whatever surrounds them.
    #[test]
    fn the_first_flagged_byte_is_the_first_that_matches() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet = [0u8, 0x1F, 0x20, b'"', b'\\', b'a', 0x7F, 0x80, 0xC3, 0xFF, b'#', b']'];
        for _ in 0..20_000 {
            let bytes: [u8; 8] = std::array::from_fn(|_| alphabet[rng.usize(..alphabet.len())]);
            let word = at(&bytes, 0).unwrap();
            let flags = equal(word, b'"') | equal(word, b'\\') | below(word, 0x20);
            let wanted = bytes.iter().position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20);
            assert_eq!((flags != 0).then(|| first(flags)), wanted, "{bytes:?}");
        }
        assert_eq!(at(b"1234567", 0), None);
    }
}
