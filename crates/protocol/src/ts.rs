//! [`WireTs`]: a u64 timestamp as the sync protocol writes it.
//!
//! On the wire a timestamp (`StateVersion.ts`, `MutationResponse.ts`,
//! `Connect.maxObservedTimestamp`, `query_at_ts`'s `ts`) is the **standard, padded
//! base64 of its 8 little-endian bytes**: 0 is `"AAAAAAAAAAA="`. The official
//! client's decoder requires padding, so we always pad when encoding; when
//! decoding we also accept the URL-safe alphabet (`-`, `_`) and missing padding,
//! but insist on exactly 8 bytes.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ProtocolError;

/// Standard alphabet, padding optional (we map `-`/`_` to `+`/`/` first).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A u64 timestamp (the server uses nanoseconds since the Unix epoch) in its wire
/// encoding: padded standard base64 of the 8 little-endian bytes.
///
/// `Display`/`FromStr` and serde use the wire form; the number is `.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WireTs(pub u64);

impl WireTs {
    /// Timestamp 0, encoded `"AAAAAAAAAAA="`; the `ts` of every socket's initial
    /// [`StateVersion`](crate::StateVersion).
    pub const ZERO: WireTs = WireTs(0);

    /// The wire form: padded standard base64 of the 8 little-endian bytes.
    pub fn encode(self) -> String {
        STANDARD.encode(self.0.to_le_bytes())
    }

    /// Parses the wire form. Accepts the standard and URL-safe alphabets, with or
    /// without padding; rejects anything that does not decode to exactly 8 bytes.
    pub fn decode(s: &str) -> Result<WireTs, ProtocolError> {
        // 8 bytes are 12 characters padded; anything much longer is garbage.
        if s.len() > 16 {
            return Err(ProtocolError::bad_request(
                "invalid timestamp: expected base64 of 8 bytes",
            ));
        }
        let normalized: String = s
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                c => c,
            })
            .collect();
        let bytes = LENIENT
            .decode(normalized.as_bytes())
            .map_err(|e| ProtocolError::bad_request(format!("invalid timestamp base64: {e}")))?;
        let arr: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
            ProtocolError::bad_request(format!(
                "invalid timestamp: expected 8 bytes, got {}",
                bytes.len()
            ))
        })?;
        Ok(WireTs(u64::from_le_bytes(arr)))
    }
}

impl From<u64> for WireTs {
    fn from(value: u64) -> Self {
        WireTs(value)
    }
}

impl From<WireTs> for u64 {
    fn from(value: WireTs) -> Self {
        value.0
    }
}

impl fmt::Display for WireTs {
    /// Writes the wire form (padded base64).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl FromStr for WireTs {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WireTs::decode(s)
    }
}

impl Serialize for WireTs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for WireTs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TsVisitor;
        impl Visitor<'_> for TsVisitor {
            type Value = WireTs;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string of 8 little-endian bytes")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<WireTs, E> {
                WireTs::decode(v).map_err(|e| E::custom(e.message()))
            }
        }
        deserializer.deserialize_str(TsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero() {
        assert_eq!(WireTs(0).encode(), "AAAAAAAAAAA=");
        assert_eq!(WireTs::decode("AAAAAAAAAAA=").unwrap(), WireTs(0));
        assert_eq!(WireTs::ZERO.to_string(), "AAAAAAAAAAA=");
    }

    #[test]
    fn reference_examples() {
        let ts = WireTs::decode("wGL8O7MV6xg=").unwrap();
        assert_eq!(
            ts.0,
            u64::from_le_bytes([0xc0, 0x62, 0xfc, 0x3b, 0xb3, 0x15, 0xeb, 0x18])
        );
        assert_eq!(ts.encode(), "wGL8O7MV6xg=");
        let earlier = WireTs::decode("QLGsOrMV6xg=").unwrap();
        assert!(earlier < ts);
        assert_eq!(earlier.encode(), "QLGsOrMV6xg=");
    }

    #[test]
    fn serde_round_trip() {
        let ts = WireTs(1_795_552_735_912_000_000);
        let json = serde_json::to_string(&ts).unwrap();
        assert_eq!(json, format!("\"{}\"", ts.encode()));
        assert_eq!(serde_json::from_str::<WireTs>(&json).unwrap(), ts);
        let max = WireTs(u64::MAX);
        assert_eq!(max.encode(), "//////////8=");
        assert_eq!(
            serde_json::from_str::<WireTs>(&serde_json::to_string(&max).unwrap()).unwrap(),
            max
        );
    }

    #[test]
    fn url_safe_and_unpadded_variants() {
        assert_eq!(WireTs::decode("__________8=").unwrap(), WireTs(u64::MAX));
        assert_eq!(WireTs::decode("__________8").unwrap(), WireTs(u64::MAX));
        assert_eq!(WireTs::decode("AAAAAAAAAAA").unwrap(), WireTs(0));
        let ts = WireTs(0xfbff_fe00_0000_0000);
        let std = ts.encode();
        let url: String = std
            .chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            })
            .collect();
        assert_eq!(WireTs::decode(&url).unwrap(), ts);
    }

    #[test]
    fn rejects_wrong_lengths_and_garbage() {
        for bad in [
            "",
            "AAAA",
            "AAAAAAAAAAAAAAAA",
            "AQAAAAAAAAAA",
            "not base64!!",
            "AAAAAAAAAAA=AAAA",
            "AAAAAAAAAA==",
            "ÄÄÄÄÄÄÄÄ",
        ] {
            assert!(WireTs::decode(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(serde_json::from_str::<WireTs>("12").is_err());
        assert!(serde_json::from_str::<WireTs>("null").is_err());
        assert!(serde_json::from_str::<WireTs>("\"AAAA\"").is_err());
    }
}
