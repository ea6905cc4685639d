//! Chunker parameters and the size syntax users type (`64K`, `1M`).

use serde::{Deserialize, Serialize};

/// The largest chunk any valid setting makes (FastCDC's largest maximum,
/// 16 MiB): what a reader of chunks from any repository must accept, and
/// the most it need allocate for one.
pub const MAX_CHUNK: u32 = fastcdc::v2020::MAXIMUM_MAX as u32;

/// Minimum, average and maximum chunk sizes in bytes. Fixed per repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// No chunk is smaller, except the last of a file.
    pub min: u32,
    /// The size FastCDC aims for.
    pub avg: u32,
    /// No chunk is larger.
    pub max: u32,
}

impl Default for ChunkerParams {
    /// 8 KiB / 32 KiB / 128 KiB: see docs/PERFORMANCE.md for the measurement
    /// behind it (database pages rewritten in place against metadata cost).
    fn default() -> Self {
        ChunkerParams {
            min: 8 << 10,
            avg: 32 << 10,
            max: 128 << 10,
        }
    }
}

/// Chunker parameters outside what FastCDC accepts.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// A size string that does not parse.
    #[error("invalid size {0:?}: expected a number with an optional K, M or G suffix")]
    BadSize(String),
    /// Sizes out of order or out of FastCDC's range.
    #[error("invalid chunker sizes min={min} avg={avg} max={max}: need 64 <= min <= avg <= max <= 16M, avg >= 256, max >= 1K, all even")]
    OutOfRange {
        /// requested minimum
        min: u64,
        /// requested average
        avg: u64,
        /// requested maximum
        max: u64,
    },
}

impl ChunkerParams {
    /// Parameters with min = avg/4 and max = avg*4, the usual FastCDC spread.
    pub fn from_avg(avg: u32) -> Result<ChunkerParams, ParamsError> {
        ChunkerParams {
            min: avg / 4,
            avg,
            max: avg.saturating_mul(4),
        }
        .validate()
    }

    /// Check the sizes against FastCDC's limits.
    pub fn validate(self) -> Result<ChunkerParams, ParamsError> {
        use fastcdc::v2020 as f;
        let (min, avg, max) = (self.min as usize, self.avg as usize, self.max as usize);
        let ok = (f::MINIMUM_MIN..=f::MINIMUM_MAX).contains(&min)
            && (f::AVERAGE_MIN..=f::AVERAGE_MAX).contains(&avg)
            && (f::MAXIMUM_MIN..=f::MAXIMUM_MAX).contains(&max)
            && min <= avg
            && avg <= max
            && min % 2 == 0
            && avg % 2 == 0
            && max % 2 == 0;
        if ok {
            Ok(self)
        } else {
            Err(ParamsError::OutOfRange {
                min: min as u64,
                avg: avg as u64,
                max: max as u64,
            })
        }
    }
}

/// Parse `4096`, `64K`, `1M`, `2G` (powers of 1024, case-insensitive, optional `iB`/`B`).
pub fn parse_size(s: &str) -> Result<u64, ParamsError> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let stripped = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, shift) = match stripped.chars().last() {
        Some('k') => (&stripped[..stripped.len() - 1], 10),
        Some('m') => (&stripped[..stripped.len() - 1], 20),
        Some('g') => (&stripped[..stripped.len() - 1], 30),
        _ => (stripped, 0),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| ParamsError::BadSize(s.to_string()))?;
    n.checked_shl(shift)
        .filter(|v| v >> shift == n)
        .ok_or_else(|| ParamsError::BadSize(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64K").unwrap(), 65536);
        assert_eq!(parse_size("1m").unwrap(), 1 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("x1").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn defaults_are_valid_and_bad_orders_rejected() {
        ChunkerParams::default().validate().unwrap();
        assert!(ChunkerParams {
            min: 1 << 20,
            avg: 64 << 10,
            max: 256 << 10
        }
        .validate()
        .is_err());
    }
}
