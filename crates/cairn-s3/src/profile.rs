//! Profiles of the AWS shared config and credentials files (`~/.aws/config`,
//! `~/.aws/credentials`), which object_store does not read.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::S3Error;

/// The settings of one profile, merged from both files (the credentials
/// file wins, as in the AWS CLI). Keys are lower-case.
#[derive(Debug, Default)]
pub(crate) struct Profile {
    values: HashMap<String, String>,
}

/// Profile keys that name a way of getting credentials cairn does not
/// implement; a profile using one must not silently fall through to the
/// next source of credentials.
const UNSUPPORTED: &[&str] = &[
    "role_arn",
    "credential_process",
    "sso_session",
    "sso_start_url",
    "credential_source",
    "web_identity_token_file",
];

impl Profile {
    /// A setting, if present and not empty.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The first key that asks for a credential source cairn lacks.
    pub(crate) fn unsupported_source(&self) -> Option<&'static str> {
        UNSUPPORTED.iter().copied().find(|k| self.get(k).is_some())
    }
}

/// Load profile `name` from the two files; `None` if neither has it.
pub(crate) fn load(
    name: &str,
    credentials: &Path,
    config: &Path,
) -> Result<Option<Profile>, S3Error> {
    let config_section = if name == "default" {
        "default".to_string()
    } else {
        format!("profile {name}")
    };
    let mut found = false;
    let mut profile = Profile::default();
    // Config first, so that the credentials file overrides it.
    for (path, section) in [(config, config_section.as_str()), (credentials, name)] {
        if let Some(values) = read_section(path, section)? {
            found = true;
            profile.values.extend(values);
        }
    }
    Ok(found.then_some(profile))
}

/// The `key = value` lines of `[section]`, or `None` if the file or the
/// section does not exist.
fn read_section(path: &Path, section: &str) -> Result<Option<HashMap<String, String>>, S3Error> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(S3Error::SharedFile {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    Ok(parse_section(&text, section))
}

fn parse_section(text: &str, section: &str) -> Option<HashMap<String, String>> {
    let mut current: Option<String> = None;
    let mut out: Option<HashMap<String, String>> = None;
    for line in text.lines() {
        // Indented lines belong to a nested block such as `s3 =`.
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            if name == section {
                out.get_or_insert_with(HashMap::new);
            }
            current = Some(name);
            continue;
        }
        if current.as_deref() != Some(section) {
            continue;
        }
        if let (Some((k, v)), Some(map)) = (line.split_once('='), out.as_mut()) {
            map.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

/// `~/.aws/<name>` for the given home directory.
pub(crate) fn default_path(home: Option<&str>, name: &str) -> PathBuf {
    let home = home.unwrap_or("/");
    Path::new(home).join(".aws").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
# comment
[default]
region = eu-west-1

[profile  minio]
region=us-east-1
endpoint_url = http://127.0.0.1:9000
s3 =
  addressing_style = path
[profile assumed]
role_arn = arn:aws:iam::123:role/x
source_profile = default
";

    const CREDENTIALS: &str = "\
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = secret
; other
[minio]
AWS_ACCESS_KEY_ID = minioadmin
aws_secret_access_key = minioadmin
aws_session_token = tok
";

    fn files() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        let config = dir.path().join("config");
        fs::write(&creds, CREDENTIALS).unwrap();
        fs::write(&config, CONFIG).unwrap();
        (dir, creds, config)
    }

    #[test]
    fn profiles_merge_both_files() {
        let (_d, creds, config) = files();
        let p = load("minio", &creds, &config).unwrap().unwrap();
        assert_eq!(p.get("aws_access_key_id"), Some("minioadmin"));
        assert_eq!(p.get("aws_session_token"), Some("tok"));
        assert_eq!(p.get("region"), Some("us-east-1"));
        assert_eq!(p.get("endpoint_url"), Some("http://127.0.0.1:9000"));
        assert_eq!(p.get("addressing_style"), None, "nested keys are skipped");
        let d = load("default", &creds, &config).unwrap().unwrap();
        assert_eq!(d.get("aws_access_key_id"), Some("AKIADEFAULT"));
        assert_eq!(d.get("region"), Some("eu-west-1"));
    }

    #[test]
    fn a_missing_profile_or_file_is_none() {
        let (dir, creds, config) = files();
        assert!(load("nope", &creds, &config).unwrap().is_none());
        let missing = dir.path().join("missing");
        assert!(load("default", &missing, &missing).unwrap().is_none());
    }

    #[test]
    fn role_profiles_are_reported_as_unsupported() {
        let (_d, creds, config) = files();
        let p = load("assumed", &creds, &config).unwrap().unwrap();
        assert_eq!(p.unsupported_source(), Some("role_arn"));
        let d = load("default", &creds, &config).unwrap().unwrap();
        assert_eq!(d.unsupported_source(), None);
    }
}
