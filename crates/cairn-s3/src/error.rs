//! Errors of opening a backend, and the one-line form of a store's errors.

use std::path::PathBuf;

/// Why a backend could not be set up. Failures of individual requests are
/// [`cairn_repo::BackendError`]s.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The repository URL is malformed.
    #[error("{url}: not an s3://BUCKET/PREFIX URL: {why}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// A shared config or credentials file could not be read.
    #[error("{}: {source}", path.display())]
    SharedFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `AWS_PROFILE` names a profile neither shared file has.
    #[error("AWS profile {profile:?} is in neither {} nor {}", credentials.display(), config.display())]
    NoProfile {
        /// The profile.
        profile: String,
        /// The credentials file looked in.
        credentials: PathBuf,
        /// The config file looked in.
        config: PathBuf,
    },
    /// The profile gets its credentials a way cairn does not implement.
    #[error(
        "AWS profile {profile:?} uses {setting}, which cairn does not support; export the \
         credentials instead (`eval \"$(aws configure export-credentials --profile {profile} \
         --format env)\"`)"
    )]
    UnsupportedProfile {
        /// The profile.
        profile: String,
        /// The setting that asks for the unsupported source.
        setting: &'static str,
    },
    /// The CA bundle named by `AWS_CA_BUNDLE` is unusable.
    #[error("AWS_CA_BUNDLE {}: {why}", path.display())]
    CaBundle {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The store client could not be configured.
    #[error("{bucket}: {source}")]
    Config {
        /// The bucket.
        bucket: String,
        /// object_store's complaint.
        source: object_store::Error,
    },
    /// The I/O runtime could not start.
    #[error("starting the S3 I/O threads: {0}")]
    Runtime(std::io::Error),
}

/// A store's error on one line: object_store includes the server's XML
/// body, which spans lines and repeats the key; the S3 error code and
/// message are what a user needs.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RemoteError(String);

impl RemoteError {
    /// The one-line summary of `e`.
    pub(crate) fn new(e: &(dyn std::error::Error + 'static)) -> RemoteError {
        let mut text = summarize(&e.to_string());
        // reqwest's message hides the cause ("error sending request"); the
        // innermost error has it ("Connection refused").
        let mut root = e;
        while let Some(s) = root.source() {
            root = s;
        }
        let cause = summarize(&root.to_string());
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
        RemoteError(text)
    }
}

/// Longest summary kept; the rest of a server's answer is noise.
const MAX_SUMMARY: usize = 400;

fn summarize(text: &str) -> String {
    let code = xml_field(text, "Code");
    let message = xml_field(text, "Message");
    let head = match text.find("<?xml").or_else(|| text.find("<Error>")) {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = drop_url(&head.split_whitespace().collect::<Vec<_>>().join(" "));
    out = out.trim_end_matches([':', ' ']).to_string();
    match (code, message) {
        (Some(c), Some(m)) => out.push_str(&format!(": {c}: {m}")),
        (Some(c), None) => out.push_str(&format!(": {c}")),
        _ => {}
    }
    if out.len() > MAX_SUMMARY {
        let mut cut = MAX_SUMMARY;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// object_store says "Generic S3 error: [Error performing list request: ]
/// Error performing GET <url> in ..."; the error already names the key, so
/// keep "[list request: ]GET in ...".
fn drop_url(text: &str) -> String {
    let text = text.strip_prefix("Generic S3 error: ").unwrap_or(text);
    let Some(at) = text.rfind("Error performing ") else {
        return text.to_string();
    };
    let (before, rest) = text.split_at(at);
    let before = before.strip_prefix("Error performing ").unwrap_or(before);
    let mut words = rest["Error performing ".len()..].splitn(3, ' ');
    match (words.next(), words.next(), words.next()) {
        (Some(method), Some(_url), Some(tail)) => format!("{before}{method} {tail}"),
        _ => text.to_string(),
    }
}

fn xml_field<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let len = text[start..].find(&format!("</{tag}>"))?;
    Some(text[start..start + len].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_bodies_shrink_to_code_and_message() {
        let raw = "Generic S3 error: Error performing PUT http://h/b/k in 2s, after 3 retries \
                   - Server returned non-2xx status code: 503 Service Unavailable: \
                   <?xml version=\"1.0\"?>\n<Error>\n  <Code>SlowDown</Code>\n  \
                   <Message>Please reduce your request rate.</Message>\n</Error>";
        let s = summarize(raw);
        assert!(!s.contains('\n'));
        assert!(s.ends_with("503 Service Unavailable: SlowDown: Please reduce your request rate."));
        assert!(s.contains("after 3 retries"));
        assert!(s.starts_with("PUT in 2s"), "{s}");
    }

    #[test]
    fn nested_request_errors_keep_their_operation() {
        let raw = "Generic S3 error: Error performing list request: Error performing GET \
                   http://h/b?list-type=2 in 44ms - Server returned non-2xx status code: \
                   404 Not Found: <?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>\
                   <Message>The specified bucket does not exist</Message></Error>";
        assert_eq!(
            summarize(raw),
            "list request: GET in 44ms - Server returned non-2xx status code: 404 Not Found: \
             NoSuchBucket: The specified bucket does not exist"
        );
    }

    #[test]
    fn long_answers_are_cut() {
        let s = summarize(&"x ".repeat(1000));
        assert!(s.len() <= MAX_SUMMARY + '…'.len_utf8());
    }
}
