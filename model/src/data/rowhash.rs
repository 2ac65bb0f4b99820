//! The row hash: a stable, specified hash of a row's values, for exact-duplicate detection and
//! for the key that decides a row's staging membership.
//!
//! # The encoding of a row
//!
//! A row is hashed from each field's PARSED value, never from the text it was written as, so
//! that a CSV and a Parquet file of the same data give the same keys (`12.30` in a CSV is the
//! double 12.3 a Parquet file holds, `TRUE` and `yes` may both be a boolean's true, `007` is
//! the integer 7). Each value becomes a sequence of 64-bit words, absorbed in order; the first
//! word's top byte is a tag, so that no value's words are the start of another's:
//!
//! | value | words |
//! |---|---|
//! | missing (any kind) | `0x01 << 56` |
//! | a number (numeric or integer column) | `0x02 << 56`, then the IEEE 754 bits of the parsed `f64` (`-0.0` as `0.0`; NaN never occurs: it is refused) |
//! | a boolean or a label | `0x03 << 56` for false, `0x03 << 56 \| 1` for true |
//! | a categorical level | `0x04 << 56 \| len`, then the level's UTF-8 bytes as written (see [`RowHasher::text`]) |
//! | an id | `0x05 << 56 \| len`, then its canonical text's bytes (see [`canonical_id`]) |
//! | a value that failed its column's rule | `0x06 << 56 \| len`, then its bytes (only the duplicate count of a refused file sees it) |
//! | an ignored column | nothing |
//!
//! A row's key ([`RowHasher::finish`]) absorbs its id alone when the schema has an id column,
//! else the values of its columns but the label, in the schema's order. The duplicate hash
//! ([`RowHasher::finish128`]) absorbs every value of the schema's columns, label and id
//! included, in the schema's order: columns the schema does not declare, or declares ignored,
//! are no part of a row's identity.
//!
//! Artifacts record which encoding chose their staging rows ([`KeyScheme`]): this one is
//! [`KeyScheme::Values`]; [`KeyScheme::Text`] hashed each field's text as written with
//! [`RowHasher::field`], and is no longer computed.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::data::schema::Parsed;
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

const MISSING: u64 = 0x01 << 56;
const NUMBER: u64 = 0x02 << 56;
const BOOLEAN: u64 = 0x03 << 56;
const LEVEL: u64 = 0x04 << 56;
const ID: u64 = 0x05 << 56;
const RAW: u64 = 0x06 << 56;

/// What the row keys of an artifact's hold-out staging split were computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyScheme {
    /// Each field's text as written, hashed with [`RowHasher::field`]: artifacts built before
    /// the scheme was recorded. This build no longer computes such keys.
    Text,
    /// Each field's parsed value, as the module's documentation specifies: what this build
    /// computes.
    Values,
}

impl KeyScheme {
    /// The scheme of the keys this build computes.
    pub const CURRENT: KeyScheme = KeyScheme::Values;

    /// The scheme of an artifact that records none: it was built before the field existed.
    pub fn unrecorded() -> KeyScheme {
        KeyScheme::Text
    }

    /// True for [`KeyScheme::Text`] (which artifacts do not write, so that an older artifact
    /// serialises again to the very bytes its checksum covers).
    pub fn is_text(&self) -> bool {
        *self == KeyScheme::Text
    }
}

impl Default for RowHasher {
    fn default() -> Self {
        RowHasher { a: 0x243F_6A88_85A3_08D3, b: 0x1319_8A2E_0370_7344 }
    }
}

/// An id's canonical text: an integer (an optional sign, then ASCII digits) without its `+` and
/// leading zeros, `-0` as `0`, so that the text `007` of a CSV and the integer 7 of a Parquet
/// file are one id; any other id as written.
pub fn canonical_id(raw: &str) -> Cow<'_, str> {
    let (negative, digits) = match raw.as_bytes().first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Cow::Borrowed(raw);
    }
    let trimmed = digits.trim_start_matches('0');
    let magnitude = if trimmed.is_empty() { "0" } else { trimmed };
    let negative = negative && magnitude != "0";
    if !negative && magnitude.len() == raw.len() {
        return Cow::Borrowed(raw);
    }
    Cow::Owned(if negative { format!("-{magnitude}") } else { magnitude.to_string() })
}

impl RowHasher {
    fn absorb(&mut self, w: u64) {
        self.a = (self.a ^ w).wrapping_mul(K1).rotate_left(29);
        self.b = (self.b ^ w).wrapping_mul(K2).rotate_left(31);
    }

    /// Adds one field's bytes; the field's length is absorbed too, so that ("ab", "c") differs
    /// from ("a", "bc"). The encoding of [`KeyScheme::Text`], and how a staging salt is hashed.
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

    /// Adds a text value: `tag | len` (the length in the low 56 bits), then the bytes eight at
    /// a time little-endian, the last word zero-padded (no word when the length is a multiple
    /// of eight).
    fn text(&mut self, tag: u64, bytes: &[u8]) {
        self.absorb(tag | (bytes.len() as u64 & ((1 << 56) - 1)));
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.absorb(u64::from_le_bytes(c.try_into().expect("chunks of eight")));
        }
        if !chunks.remainder().is_empty() {
            self.absorb(chunks.remainder().iter().enumerate().fold(0u64, |w, (i, &b)| w | u64::from(b) << (8 * i)));
        }
    }

    /// Adds one parsed value, as the module's table encodes it.
    pub fn value(&mut self, value: &Parsed<'_>) {
        match *value {
            Parsed::Missing => self.absorb(MISSING),
            Parsed::Number(x) => {
                // One zero: -0.0 == 0.0, and a sign bit must not move a row.
                let x = if x == 0.0 { 0.0 } else { x };
                self.absorb(NUMBER);
                self.absorb(x.to_bits());
            }
            Parsed::Bool(b) | Parsed::Label(b) => self.absorb(BOOLEAN | u64::from(b)),
            Parsed::Level(level) => self.text(LEVEL, level.as_bytes()),
            Parsed::Id(id) => self.text(ID, canonical_id(id).as_bytes()),
            Parsed::Ignored => {}
        }
    }

    /// Adds a field that broke its column's rule, as written.
    pub fn refused(&mut self, bytes: &[u8]) {
        self.text(RAW, bytes);
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

    /// The key of a row given as its parsed values.
    pub(crate) fn key_of_values(values: &[Parsed<'_>]) -> u64 {
        let mut h = RowHasher::default();
        values.iter().for_each(|v| h.value(v));
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fields: &[&str]) -> u64 {
        RowHasher::key_of(fields)
    }

    fn values(values: &[Parsed<'_>]) -> u64 {
        RowHasher::key_of_values(values)
    }

    #[test]
    fn field_boundaries_matter_and_the_hash_is_fixed() {
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
        assert_ne!(key(&["", "x"]), key(&["x", ""]));
        assert_ne!(key(&["12345678", ""]), key(&["1234567", "8"]));
        // Staging salts are hashed so: the staging split of every artifact depends on it.
        assert_eq!(key(&["C00001", "29", "north"]), KEY_OF_A_ROW);
    }

    /// Computed once with this implementation; a change here moves every staging row.
    const KEY_OF_A_ROW: u64 = 7_181_022_160_294_021_776;

    #[test]
    fn the_value_encoding_is_fixed() {
        use Parsed::*;
        let row = [Id("C00001"), Number(29.0), Number(12.3), Level("north"), Bool(true), Missing, Label(false)];
        // The staging split of every artifact of KeyScheme::Values depends on this value: a
        // change of encoding must be a new scheme, never an edit of this constant.
        assert_eq!(values(&row), KEY_OF_A_ROW_OF_VALUES);
        // The words of the module's table, absorbed one by one, give the same key: the table
        // is the encoding.
        let mut words = RowHasher::default();
        let c00001 = u64::from_le_bytes(*b"C00001\0\0");
        let north = u64::from_le_bytes(*b"north\0\0\0");
        for w in [5 << 56 | 6, c00001, 2 << 56, 29f64.to_bits(), 2 << 56, 12.3f64.to_bits(), 4 << 56 | 5, north]
            .into_iter()
            .chain([3 << 56 | 1, 1 << 56, 3 << 56])
        {
            words.absorb(w);
        }
        assert_eq!(words.finish(), KEY_OF_A_ROW_OF_VALUES);
        // Ignored columns are no part of a row.
        let again =
            [Id("C00001"), Number(29.0), Ignored, Number(12.3), Level("north"), Bool(true), Missing, Label(false)];
        assert_eq!(values(&again), KEY_OF_A_ROW_OF_VALUES);
    }

    /// Computed once with this implementation.
    const KEY_OF_A_ROW_OF_VALUES: u64 = 16_571_133_418_195_133_038;

    #[test]
    fn values_are_told_apart_by_kind_and_boundary() {
        use Parsed::*;
        assert_eq!(values(&[Number(0.0)]), values(&[Number(-0.0)]));
        assert_ne!(values(&[Number(1.0)]), values(&[Number(-1.0)]));
        assert_ne!(values(&[Missing]), values(&[Number(0.0)]));
        assert_ne!(values(&[Bool(false)]), values(&[Missing]));
        assert_ne!(values(&[Bool(false)]), values(&[Bool(true)]));
        assert_eq!(values(&[Bool(true)]), values(&[Label(true)]));
        assert_ne!(values(&[Level("ab"), Level("c")]), values(&[Level("a"), Level("bc")]));
        assert_ne!(values(&[Level(""), Level("x")]), values(&[Level("x"), Level("")]));
        assert_ne!(values(&[Level("12345678"), Level("")]), values(&[Level("1234567"), Level("8")]));
        assert_ne!(values(&[Level("1")]), values(&[Number(1.0)]));
        assert_ne!(values(&[Level("7")]), values(&[Id("7")]));
        // A level of one zero byte is not the empty level, nor the empty level nothing.
        assert_ne!(values(&[Level("\0")]), values(&[Level("")]));
        assert_ne!(values(&[Level("")]), values(&[]));
        let mut refused = RowHasher::default();
        refused.refused(b"north");
        assert_ne!(refused.finish(), values(&[Level("north")]));
    }

    #[test]
    fn an_integer_id_is_its_value() {
        for (raw, canonical) in [
            ("007", "7"),
            ("+7", "7"),
            ("-007", "-7"),
            ("-0", "0"),
            ("000", "0"),
            ("7", "7"),
            ("-12", "-12"),
            ("0", "0"),
            ("C007", "C007"),
            ("7.0", "7.0"),
            ("", ""),
            ("-", "-"),
            ("+", "+"),
            (" 7", " 7"),
            ("１", "１"),
            ("123456789012345678901234567890", "123456789012345678901234567890"),
        ] {
            assert_eq!(canonical_id(raw), canonical, "{raw:?}");
        }
        assert!(matches!(canonical_id("C007"), Cow::Borrowed(_)));
        assert!(matches!(canonical_id("12"), Cow::Borrowed(_)));
        assert_eq!(values(&[Parsed::Id("007")]), values(&[Parsed::Id("7")]));
    }

    #[test]
    fn the_scheme_is_recorded_by_name() {
        assert_eq!(serde_json::to_string(&KeyScheme::CURRENT).unwrap(), "\"values\"");
        assert_eq!(serde_json::from_str::<KeyScheme>("\"text\"").unwrap(), KeyScheme::Text);
        assert_eq!(KeyScheme::unrecorded(), KeyScheme::Text);
    }
}
