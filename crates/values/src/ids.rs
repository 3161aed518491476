//! Document ids, table numbers and index ids.
//!
//! A [`DocumentId`] is 16 random bytes plus the [`TableNumber`] of its table.
//! Its raw form ([`DocumentId::to_bytes`]) is the 16 random bytes followed by
//! the table number as big-endian `u32`; its string form ([`DocumentId::encode`])
//! is 36 characters of lowercase base32 (alphabet
//! `0123456789abcdefghjkmnpqrstvwxyz`) over the 20 raw bytes followed by a
//! Fletcher-16 checksum of them, so typos are detected when an id is parsed.
//!
//! Table numbers and index ids are derived deterministically from names
//! ([`table_number`], [`index_id`]), so every node agrees on them without
//! coordination.
//!
//! Randomness comes from the caller (the engine injects an id generator);
//! this module never generates random bytes itself.

use std::fmt;
use std::str::FromStr;

use errors::Error;
pub use persistence::{IndexId, TableNumber};
use sha2::{Digest, Sha256};

use crate::value::truncate;

/// The base32 alphabet of encoded ids (Crockford's, lowercase).
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Length of [`DocumentId::to_bytes`].
pub const DOCUMENT_ID_BYTES: usize = 20;
/// Length of an encoded id: ceil((20 + 2) * 8 / 5).
pub const ENCODED_ID_LEN: usize = 36;
/// Raw bytes plus checksum.
const PAYLOAD_LEN: usize = DOCUMENT_ID_BYTES + 2;

/// The table number of a table: the first 4 bytes (big-endian) of the SHA-256
/// of its name, with the top bit cleared; 0 becomes 1.
pub fn table_number(table_name: &str) -> TableNumber {
    TableNumber(hash_number(table_name.as_bytes()))
}

/// The id of index `index_name` of table `table_name`: the same scheme as
/// [`table_number`] over `"{table}.{index}"`.
pub fn index_id(table_name: &str, index_name: &str) -> IndexId {
    IndexId(hash_number(format!("{table_name}.{index_name}").as_bytes()))
}

fn hash_number(input: &[u8]) -> u32 {
    let digest = Sha256::digest(input);
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) & 0x7FFF_FFFF;
    if n == 0 { 1 } else { n }
}

/// The id of one document: its table and 16 random bytes.
///
/// Ids order like their raw bytes ([`DocumentId::to_bytes`]), which is also
/// how index keys order them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DocumentId {
    table: TableNumber,
    random: [u8; 16],
}

impl DocumentId {
    /// An id in `table` with the given random bytes.
    pub fn new(table: TableNumber, random: [u8; 16]) -> Self {
        Self { table, random }
    }

    /// The table the document belongs to.
    pub fn table(&self) -> TableNumber {
        self.table
    }

    /// The random part of the id.
    pub fn random(&self) -> [u8; 16] {
        self.random
    }

    /// The raw form: the 16 random bytes followed by the table number as
    /// big-endian `u32`.
    pub fn to_bytes(&self) -> [u8; DOCUMENT_ID_BYTES] {
        let mut out = [0; DOCUMENT_ID_BYTES];
        out[..16].copy_from_slice(&self.random);
        out[16..].copy_from_slice(&self.table.0.to_be_bytes());
        out
    }

    /// Parses the raw form; `None` unless `bytes` is exactly 20 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; DOCUMENT_ID_BYTES] = bytes.try_into().ok()?;
        let mut random = [0; 16];
        random.copy_from_slice(&bytes[..16]);
        let table = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        Some(Self {
            table: TableNumber(table),
            random,
        })
    }

    /// The string form: 36 characters of lowercase base32 over the raw bytes
    /// followed by their Fletcher-16 checksum.
    pub fn encode(&self) -> String {
        let mut payload = [0u8; PAYLOAD_LEN];
        let raw = self.to_bytes();
        payload[..DOCUMENT_ID_BYTES].copy_from_slice(&raw);
        payload[DOCUMENT_ID_BYTES..].copy_from_slice(&fletcher16(&raw));

        let mut out = String::with_capacity(ENCODED_ID_LEN);
        let mut buffer: u32 = 0;
        let mut bits = 0;
        for byte in payload {
            buffer = (buffer << 8) | u32::from(byte);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
            }
        }
        if bits > 0 {
            out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
        }
        out
    }

    /// Parses the string form. Returns `None` for a wrong length, a character
    /// outside the alphabet (upper case included), non-zero padding bits or a
    /// checksum mismatch.
    pub fn decode(text: &str) -> Option<Self> {
        let text = text.as_bytes();
        if text.len() != ENCODED_ID_LEN {
            return None;
        }
        let mut payload = [0u8; PAYLOAD_LEN];
        let mut filled = 0;
        let mut buffer: u32 = 0;
        let mut bits = 0;
        for &c in text {
            buffer = (buffer << 5) | u32::from(digit_value(c)?);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                // 36 * 5 = 180 bits: exactly 22 whole bytes and 4 padding bits.
                *payload.get_mut(filled)? = (buffer >> bits) as u8;
                filled += 1;
            }
        }
        // The padding bits must be zero so every id has exactly one spelling.
        if filled != PAYLOAD_LEN || buffer & ((1 << bits) - 1) != 0 {
            return None;
        }
        let (raw, checksum) = payload.split_at(DOCUMENT_ID_BYTES);
        if fletcher16(raw) != checksum {
            return None;
        }
        Self::from_bytes(raw)
    }
}

fn digit_value(c: u8) -> Option<u8> {
    ALPHABET
        .iter()
        .position(|&a| a == c)
        .and_then(|i| u8::try_from(i).ok())
}

/// Fletcher-16 (modulo 255) of `data`, as `[sum2, sum1]`.
fn fletcher16(data: &[u8]) -> [u8; 2] {
    let mut sum1: u16 = 0;
    let mut sum2: u16 = 0;
    for &b in data {
        sum1 = (sum1 + u16::from(b)) % 255;
        sum2 = (sum2 + sum1) % 255;
    }
    // Both sums are below 255, so they fit a byte.
    [sum2 as u8, sum1 as u8]
}

impl PartialOrd for DocumentId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DocumentId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.to_bytes().cmp(&other.to_bytes())
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({}, table {})", self.encode(), self.table.0)
    }
}

impl FromStr for DocumentId {
    type Err = Error;

    /// Parses the string form; failures are `VALIDATION_ERROR`s.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::decode(s)
            .ok_or_else(|| Error::validation(format!("Invalid document id {:?}", truncate(s, 64))))
    }
}

/// Serializes as the string form.
impl serde::Serialize for DocumentId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode())
    }
}

/// Deserializes from the string form.
impl<'de> serde::Deserialize<'de> for DocumentId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl serde::de::Visitor<'_> for IdVisitor {
            type Value = DocumentId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a document id string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DocumentId, E> {
                DocumentId::decode(v)
                    .ok_or_else(|| E::custom(format!("invalid document id {:?}", truncate(v, 64))))
            }
        }
        deserializer.deserialize_str(IdVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_numbers_are_deterministic_and_positive() {
        let users = table_number("users");
        assert_eq!(users, table_number("users"));
        assert_ne!(users, table_number("meetings"));
        assert!(users.0 > 0 && users.0 < 0x8000_0000);
        // Pinned values (computed independently with Python's hashlib), so the
        // scheme never changes by accident: stored ids depend on it.
        assert_eq!(users.0, 2_113_621_238);
        assert_eq!(index_id("users", "by_email").0, 323_680_175);
    }

    #[test]
    fn encode_decode() {
        let id = DocumentId::new(table_number("users"), *b"0123456789abcdef");
        let text = id.encode();
        assert_eq!(text.len(), ENCODED_ID_LEN);
        assert!(text.bytes().all(|c| ALPHABET.contains(&c)));
        assert_eq!(DocumentId::decode(&text), Some(id));
        assert_eq!(text.parse::<DocumentId>().unwrap(), id);
        assert_eq!(id.to_string(), text);
        assert_eq!(DocumentId::from_bytes(&id.to_bytes()), Some(id));
        assert_eq!(id.table(), table_number("users"));
    }

    #[test]
    fn decode_rejects_garbage() {
        let id = DocumentId::new(TableNumber(7), [0xAB; 16]);
        let text = id.encode();
        assert_eq!(DocumentId::decode(&text[1..]), None);
        assert_eq!(DocumentId::decode(&format!("{text}0")), None);
        assert_eq!(DocumentId::decode(&text.to_uppercase()), None);
        assert_eq!(DocumentId::decode(&format!("{}i", &text[..35])), None);
        assert_eq!(DocumentId::decode(&format!("{}é", &text[..34])), None);
        assert_eq!(DocumentId::decode(""), None);
        assert!("nope".parse::<DocumentId>().is_err());
        assert_eq!(DocumentId::from_bytes(&[0; 19]), None);
    }

    #[test]
    fn non_canonical_padding_is_rejected() {
        let id = DocumentId::new(TableNumber(1), [0; 16]);
        let text = id.encode();
        let last = text.as_bytes()[35];
        let pos = ALPHABET.iter().position(|&a| a == last).unwrap();
        let flipped = ALPHABET[pos ^ 1] as char;
        assert_eq!(
            DocumentId::decode(&format!("{}{flipped}", &text[..35])),
            None
        );
    }

    #[test]
    fn order_follows_bytes() {
        let a = DocumentId::new(TableNumber(9), [0; 16]);
        let b = DocumentId::new(TableNumber(1), [1; 16]);
        assert!(a < b);
    }

    #[test]
    fn serde_as_string() {
        let id = DocumentId::new(TableNumber(3), [5; 16]);
        let json = serde_json::to_value(id).unwrap();
        assert_eq!(json, serde_json::Value::String(id.encode()));
        assert_eq!(serde_json::from_value::<DocumentId>(json).unwrap(), id);
        assert!(serde_json::from_value::<DocumentId>(serde_json::json!("zz")).is_err());
    }
}
