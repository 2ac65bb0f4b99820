//! The row hash: a stable, specified hash of a row's fields, for exact-duplicate detection and
//! for the key that decides a row's staging membership.

use crate::rng::mix;

/// A stable, specified row hash, eight bytes at a time (std's `DefaultHasher` may change between
/// Rust releases, and staging membership must never change). Two lanes with different
/// multipliers give 128 bits for duplicate detection; the first lane alone is the row key.
#[derive(Debug, Clone, Copy)]
pub struct RowHasher {
    a: u64,
    b: u64,
}

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;

impl Default for RowHasher {
    fn default() -> Self {
        RowHasher { a: 0x243F_6A88_85A3_08D3, b: 0x1319_8A2E_0370_7344 }
    }
}

impl RowHasher {
    fn absorb(&mut self, w: u64) {
        self.a = (self.a ^ w).wrapping_mul(K1).rotate_left(29);
        self.b = (self.b ^ w).wrapping_mul(K2).rotate_left(31);
    }

    /// Adds one field's bytes; the field's length is absorbed too, so that ("ab", "c") differs
    /// from ("a", "bc").
    pub fn field(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.absorb(u64::from_le_bytes(c.try_into().expect("chunks of eight")));
        }
        // At most seven tail bytes, little-endian (a loop, not a variable-length memcpy call):
        // the top byte is free for the length.
        let tail = chunks.remainder().iter().enumerate().fold(0u64, |w, (i, &b)| w | u64::from(b) << (8 * i));
        self.absorb(tail ^ ((bytes.len() as u64 & 0xff) << 56) ^ 0x80);
    }

    /// The row's key (64 bits).
    pub fn finish(self) -> u64 {
        mix(self.a)
    }

    /// 128 bits, for telling rows apart.
    pub fn finish128(self) -> (u64, u64) {
        (mix(self.a), mix(self.b ^ K1))
    }
}

#[cfg(test)]
impl RowHasher {
    /// The key of a row given as its fields' text (for tests here and in the staging rule's).
    pub(crate) fn key_of(fields: &[&str]) -> u64 {
        let mut h = RowHasher::default();
        fields.iter().for_each(|f| h.field(f.as_bytes()));
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fields: &[&str]) -> u64 {
        RowHasher::key_of(fields)
    }

    #[test]
    fn field_boundaries_matter_and_the_hash_is_fixed() {
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
        assert_ne!(key(&["", "x"]), key(&["x", ""]));
        assert_ne!(key(&["12345678", ""]), key(&["1234567", "8"]));
        // The staging split of every artifact depends on this value: it must never change.
        assert_eq!(key(&["C00001", "29", "north"]), KEY_OF_A_ROW);
    }

    /// Computed once with this implementation; a change here moves every staging row.
    const KEY_OF_A_ROW: u64 = 7_181_022_160_294_021_776;
}
