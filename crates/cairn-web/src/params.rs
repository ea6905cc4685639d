//! Query strings and form bodies as raw bytes, and the checks every
//! user-supplied path passes before it reaches the library.
//!
//! Values are percent-decoded to bytes, not to text: a snapshot may hold
//! names that are not UTF-8, and their links must lead back to them.

use cairn_repo::format::tree::is_safe_name;
use percent_encoding::percent_decode;

use crate::error::HttpError;

/// Decoded `key=value` pairs of a query string or an
/// `application/x-www-form-urlencoded` body.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, Vec<u8>)>);

impl Params {
    /// Parse; `+` is a space, `%XX` a byte.
    pub fn parse(raw: &[u8]) -> Params {
        let decode = |s: &[u8]| -> Vec<u8> {
            let spaced: Vec<u8> = s
                .iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect();
            percent_decode(&spaced).collect()
        };
        let pairs = raw
            .split(|&b| b == b'&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = match p.iter().position(|&b| b == b'=') {
                    Some(i) => (&p[..i], &p[i + 1..]),
                    None => (p, &[][..]),
                };
                (String::from_utf8_lossy(&decode(k)).into_owned(), decode(v))
            })
            .collect();
        Params(pairs)
    }

    /// The first value of `key`, as bytes.
    pub fn bytes(&self, key: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of `key` as text (400 if it is not UTF-8).
    pub fn text(&self, key: &str) -> Result<Option<&str>, HttpError> {
        self.bytes(key)
            .map(|b| {
                std::str::from_utf8(b)
                    .map_err(|_| HttpError::bad_request(format!("{key}: not valid UTF-8")))
            })
            .transpose()
    }

    /// A required text value.
    pub fn need(&self, key: &str) -> Result<&str, HttpError> {
        self.text(key)?
            .ok_or_else(|| HttpError::bad_request(format!("missing parameter {key}")))
    }

    /// A number, `default` when absent.
    pub fn number(&self, key: &str, default: usize) -> Result<usize, HttpError> {
        match self.text(key)? {
            None | Some("") => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| HttpError::bad_request(format!("{key}: not a number"))),
        }
    }

    /// Whether a checkbox is ticked.
    pub fn flag(&self, key: &str) -> bool {
        self.bytes(key).is_some_and(|v| !v.is_empty() && v != b"0")
    }
}

/// A path inside a snapshot or under the restore root: relative, its
/// components separated by single `/`, each a safe name (not empty, `.`
/// or `..`, no NUL). Empty means the root. Anything else is refused
/// outright rather than normalized, so that what a user asked for is what
/// is served, and `..`, `%2e%2e`, absolute paths and NUL never get in.
pub fn safe_path(raw: &[u8]) -> Result<Vec<u8>, HttpError> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    if raw.split(|&b| b == b'/').all(is_safe_name) {
        return Ok(raw.to_vec());
    }
    Err(HttpError::bad_request(format!(
        "unsafe path {:?}: give a relative path of plain names (no `..`, `.`, empty components, leading `/` or NUL)",
        String::from_utf8_lossy(raw)
    )))
}

/// The components of a checked path.
pub fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

/// The path of `name` inside directory `dir`.
pub fn child(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        name.to_vec()
    } else {
        [dir, b"/", name].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_decode_to_raw_bytes() {
        let p = Params::parse(b"path=a%2Fb%FF&x=1+2&flag&empty=");
        assert_eq!(p.bytes("path"), Some(&b"a/b\xff"[..]));
        assert_eq!(p.text("x").unwrap(), Some("1 2"));
        assert!(p.text("path").is_err());
        assert!(!p.flag("flag") && !p.flag("empty") && !p.flag("none"));
        assert_eq!(p.number("missing", 7).unwrap(), 7);
        assert!(p.number("x", 0).is_err());
    }

    #[test]
    fn traversal_is_refused_not_normalized() {
        for bad in [
            &b"../etc"[..],
            b"a/../../b",
            b"/etc/passwd",
            b"a//b",
            b"a/",
            b".",
            b"a/./b",
            b"a\0b",
        ] {
            assert!(safe_path(bad).is_err(), "{bad:?} accepted");
        }
        for good in [&b""[..], b"a", b"a/b c/\xff", b"..a", b"a.."] {
            assert_eq!(safe_path(good).unwrap(), good);
        }
        // %2e%2e decodes to `..` before the check sees it.
        let p = Params::parse(b"path=%2e%2e%2fx");
        assert!(safe_path(p.bytes("path").unwrap()).is_err());
    }
}
