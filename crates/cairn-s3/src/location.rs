//! `s3://BUCKET/PREFIX`: where a repository lives in a store.

use crate::error::S3Error;

/// A bucket and the key prefix under which the repository's objects live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The prefix without leading or trailing `/` (empty: the bucket root).
    pub prefix: String,
}

impl S3Location {
    /// Parse `s3://bucket`, `s3://bucket/`, `s3://bucket/a/b` or
    /// `s3://bucket/a/b/`. Empty path segments (`a//b`) are refused, since a
    /// store would keep them as part of the key but a listing could not be
    /// told apart from a mistyped prefix.
    pub fn parse(url: &str) -> Result<S3Location, S3Error> {
        let bad = |why: &str| S3Error::BadUrl {
            url: url.to_string(),
            why: why.to_string(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("it must start with s3://"))?;
        let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket name"));
        }
        if !bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_'))
        {
            return Err(bad("a bucket name has only a-z, 0-9, '-', '.' and '_'"));
        }
        let prefix = path.trim_matches('/');
        if !prefix.is_empty()
            && prefix
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(bad("the prefix has an empty, '.' or '..' segment"));
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The full key of a repository key.
    pub fn key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    /// The repository key of a full key, if it is under the prefix.
    pub fn relative<'a>(&self, full: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            return Some(full);
        }
        full.strip_prefix(self.prefix.as_str())?.strip_prefix('/')
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> (String, String) {
        let l = S3Location::parse(url).unwrap();
        (l.bucket, l.prefix)
    }

    #[test]
    fn bucket_and_prefix_ignore_outer_slashes() {
        let pair = |b: &str, p: &str| (b.to_string(), p.to_string());
        assert_eq!(parse("s3://backups"), pair("backups", ""));
        assert_eq!(parse("s3://backups/"), pair("backups", ""));
        assert_eq!(
            parse("s3://backups/hosts/db1"),
            pair("backups", "hosts/db1")
        );
        assert_eq!(
            parse("s3://backups/hosts/db1/"),
            pair("backups", "hosts/db1")
        );
        assert_eq!(parse("s3://backups//db1"), pair("backups", "db1"));
    }

    #[test]
    fn malformed_urls_are_refused_with_the_url() {
        for url in [
            "backups",
            "s3://",
            "s3:///x",
            "s3://Back",
            "s3://b/a//c",
            "s3://b/a/../c",
        ] {
            let err = S3Location::parse(url).unwrap_err().to_string();
            assert!(err.contains(url), "{err}");
        }
    }

    #[test]
    fn keys_map_both_ways() {
        let l = S3Location::parse("s3://b/r1").unwrap();
        assert_eq!(l.key("packs/ab/x"), "r1/packs/ab/x");
        assert_eq!(l.relative("r1/packs/ab/x"), Some("packs/ab/x"));
        assert_eq!(l.relative("r10/config"), None);
        let root = S3Location::parse("s3://b").unwrap();
        assert_eq!(root.key("config"), "config");
        assert_eq!(root.relative("config"), Some("config"));
        assert_eq!(l.to_string(), "s3://b/r1");
        assert_eq!(root.to_string(), "s3://b");
    }
}
