//! The AWS conventions for finding the endpoint, region and credentials:
//! environment variables first, then the profile of the shared files, then
//! the identity of the pod, task or instance.

use std::collections::BTreeMap;
use std::path::PathBuf;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{Certificate, ClientOptions};

use crate::error::S3Error;
use crate::location::S3Location;
use crate::profile;

/// The environment an S3 backend is configured from: the `AWS_*`
/// variables (and `HOME`, for the shared files). Tests build one from a
/// list instead of changing the process environment.
#[derive(Clone, Debug, Default)]
pub struct AwsEnv {
    vars: BTreeMap<String, String>,
}

/// Where the credentials come from, as resolved at open time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`).
    Environment,
    /// Keys of a profile in the shared files.
    Profile(String),
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN` (EKS IRSA):
    /// exchanged at STS, refreshed before they expire.
    WebIdentity,
    /// The ECS task role or EKS pod identity agent
    /// (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, or `..._FULL_URI` with
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`).
    Container,
    /// The EC2 instance metadata service (IMDSv2), the last resort.
    InstanceMetadata,
}

/// What the backend resolved: enough to tell a user which store and
/// identity a repository URL ended up using.
#[derive(Clone, Debug)]
pub struct ResolvedSettings {
    /// The endpoint, if not AWS's own.
    pub endpoint: Option<String>,
    /// The region requests are signed for.
    pub region: String,
    /// Path-style addressing (`ENDPOINT/BUCKET/KEY`) rather than
    /// virtual-hosted (`BUCKET.ENDPOINT/KEY`).
    pub path_style: bool,
    /// Where the credentials come from.
    pub credentials: CredentialSource,
}

/// Region of a request that names none, as AWS's SDKs assume.
const DEFAULT_REGION: &str = "us-east-1";

impl AwsEnv {
    /// The process environment.
    pub fn from_process() -> AwsEnv {
        AwsEnv::from_vars(std::env::vars())
    }

    /// Only the given variables.
    pub fn from_vars<I, K, V>(vars: I) -> AwsEnv
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(k, _)| k.starts_with("AWS_") || k == "HOME")
            .collect();
        AwsEnv { vars }
    }

    /// A variable, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn flag(&self, name: &str) -> Option<bool> {
        self.get(name)
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
    }

    fn shared_file(&self, var: &str, name: &str) -> PathBuf {
        self.get(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| profile::default_path(self.get("HOME"), name))
    }
}

/// A builder for `location`, configured as AWS's tools would be in `env`,
/// its client options (which the caller completes), and what was resolved.
pub(crate) fn configure(
    env: &AwsEnv,
    location: &S3Location,
) -> Result<(AmazonS3Builder, ClientOptions, ResolvedSettings), S3Error> {
    let mut builder = AmazonS3Builder::new().with_bucket_name(&location.bucket);
    let mut client = ClientOptions::new();
    let has_keys = env.get("AWS_ACCESS_KEY_ID").is_some();
    for (name, value) in &env.vars {
        // A token without keys is stale; it must not pair with a profile's keys.
        if name == "AWS_SESSION_TOKEN" && !has_keys {
            continue;
        }
        match name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
            Ok(AmazonS3ConfigKey::Client(key)) => client = client.with_config(key, value),
            Ok(key) => builder = builder.with_config(key, value),
            Err(_) => {} // not an object_store setting (AWS_PROFILE, AWS_CA_BUNDLE, ...)
        }
    }
    let profile = load_profile(env)?;
    let credentials = credentials(env, profile.as_ref(), &mut builder)?;
    let region = env
        .get("AWS_REGION")
        .or_else(|| env.get("AWS_DEFAULT_REGION"))
        .or_else(|| profile.as_ref().and_then(|(_, p)| p.get("region")))
        .unwrap_or(DEFAULT_REGION)
        .to_string();
    builder = builder.with_region(&region);
    let endpoint = endpoint(env, profile.as_ref().map(|(_, p)| p));
    if let Some(e) = &endpoint {
        builder = builder.with_endpoint(e);
        if e.starts_with("http://") {
            client = client.with_allow_http(true);
        }
    }
    let path_style = path_style(env, endpoint.is_some(), &location.bucket);
    builder = builder.with_virtual_hosted_style_request(!path_style);
    if let Some(bundle) = env.get("AWS_CA_BUNDLE") {
        for cert in ca_bundle(bundle)? {
            client = client.with_root_certificate(cert);
        }
    }
    let settings = ResolvedSettings {
        endpoint,
        region,
        path_style,
        credentials,
    };
    Ok((builder, client, settings))
}

/// The profile named by `AWS_PROFILE` (which must exist), or `default` (which may not).
fn load_profile(env: &AwsEnv) -> Result<Option<(String, profile::Profile)>, S3Error> {
    let named = env
        .get("AWS_PROFILE")
        .or_else(|| env.get("AWS_DEFAULT_PROFILE"));
    let name = named.unwrap_or("default");
    let credentials = env.shared_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config = env.shared_file("AWS_CONFIG_FILE", "config");
    match profile::load(name, &credentials, &config)? {
        Some(p) => Ok(Some((name.to_string(), p))),
        None if named.is_some() => Err(S3Error::NoProfile {
            profile: name.to_string(),
            credentials,
            config,
        }),
        None => Ok(None),
    }
}

/// Apply the first source of credentials in AWS's order: environment,
/// profile, web identity, container, instance. object_store implements the
/// last three; the profile is applied here.
fn credentials(
    env: &AwsEnv,
    profile: Option<&(String, profile::Profile)>,
    builder: &mut AmazonS3Builder,
) -> Result<CredentialSource, S3Error> {
    if env.get("AWS_ACCESS_KEY_ID").is_some() || env.get("AWS_SECRET_ACCESS_KEY").is_some() {
        return Ok(CredentialSource::Environment);
    }
    if let Some((name, p)) = profile {
        if let (Some(id), Some(secret)) =
            (p.get("aws_access_key_id"), p.get("aws_secret_access_key"))
        {
            let mut b = std::mem::take(builder)
                .with_access_key_id(id)
                .with_secret_access_key(secret);
            if let Some(token) = p.get("aws_session_token") {
                b = b.with_token(token);
            }
            *builder = b;
            return Ok(CredentialSource::Profile(name.clone()));
        }
        if let Some(setting) = p.unsupported_source() {
            return Err(S3Error::UnsupportedProfile {
                profile: name.clone(),
                setting,
            });
        }
    }
    Ok(
        if env.get("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() && env.get("AWS_ROLE_ARN").is_some() {
            CredentialSource::WebIdentity
        } else if env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
            || env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
        {
            CredentialSource::Container
        } else {
            CredentialSource::InstanceMetadata
        },
    )
}

/// `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, then the profile's
/// `endpoint_url` unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is set.
fn endpoint(env: &AwsEnv, profile: Option<&profile::Profile>) -> Option<String> {
    let from_env = env
        .get("AWS_ENDPOINT_URL_S3")
        .or_else(|| env.get("AWS_ENDPOINT_URL"))
        .or_else(|| env.get("AWS_ENDPOINT"));
    let from_profile = match env.flag("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") {
        Some(true) => None,
        _ => profile.and_then(|p| p.get("endpoint_url")),
    };
    from_env
        .or(from_profile)
        .map(|e| e.trim_end_matches('/').to_string())
}

/// Path-style for a custom endpoint (MinIO, Ceph RGW, Garage and moto
/// expect it), virtual-hosted for AWS itself, which is phasing path-style
/// out; `AWS_VIRTUAL_HOSTED_STYLE_REQUEST` overrides either. A bucket name
/// with dots cannot be a TLS host name, so it stays path-style.
fn path_style(env: &AwsEnv, custom_endpoint: bool, bucket: &str) -> bool {
    match env.flag("AWS_VIRTUAL_HOSTED_STYLE_REQUEST") {
        Some(virtual_hosted) => !virtual_hosted,
        None => custom_endpoint || bucket.contains('.'),
    }
}

fn ca_bundle(path: &str) -> Result<Vec<Certificate>, S3Error> {
    let err = |why: String| S3Error::CaBundle {
        path: PathBuf::from(path),
        why,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    Certificate::from_pem_bundle(&pem).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn loc() -> S3Location {
        S3Location::parse("s3://bucket/repo").unwrap()
    }

    fn resolve(vars: &[(&str, &str)]) -> Result<(AmazonS3Builder, ResolvedSettings), S3Error> {
        let env = AwsEnv::from_vars(vars.iter().copied());
        configure(&env, &loc()).map(|(b, _, s)| (b, s))
    }

    fn get(b: &AmazonS3Builder, key: AmazonS3ConfigKey) -> Option<String> {
        b.get_config_value(&key)
    }

    /// A HOME with both shared files, and the variables pointing there.
    fn home() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(".aws")).unwrap();
        fs::write(
            dir.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n\
             [dev]\naws_access_key_id = K\naws_secret_access_key = S\naws_session_token = T\n",
        )
        .unwrap();
        fs::write(
            dir.path().join(".aws/config"),
            "[profile dev]\nregion = eu-central-1\nendpoint_url = http://127.0.0.1:9000/\n\
             [profile sso]\nsso_session = corp\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn environment_keys_win() {
        let h = home();
        let (b, s) = resolve(&[
            ("HOME", h.path().to_str().unwrap()),
            ("AWS_PROFILE", "dev"),
            ("AWS_ACCESS_KEY_ID", "EK"),
            ("AWS_SECRET_ACCESS_KEY", "ES"),
            ("AWS_SESSION_TOKEN", "ET"),
        ])
        .unwrap();
        assert_eq!(s.credentials, CredentialSource::Environment);
        assert_eq!(
            get(&b, AmazonS3ConfigKey::AccessKeyId).as_deref(),
            Some("EK")
        );
        assert_eq!(get(&b, AmazonS3ConfigKey::Token).as_deref(), Some("ET"));
        // The profile still gives region and endpoint.
        assert_eq!(s.region, "eu-central-1");
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    }

    #[test]
    fn a_profile_gives_keys_token_region_and_endpoint() {
        let h = home();
        let (b, s) =
            resolve(&[("HOME", h.path().to_str().unwrap()), ("AWS_PROFILE", "dev")]).unwrap();
        assert_eq!(s.credentials, CredentialSource::Profile("dev".into()));
        assert_eq!(
            get(&b, AmazonS3ConfigKey::AccessKeyId).as_deref(),
            Some("K")
        );
        assert_eq!(
            get(&b, AmazonS3ConfigKey::SecretAccessKey).as_deref(),
            Some("S")
        );
        assert_eq!(get(&b, AmazonS3ConfigKey::Token).as_deref(), Some("T"));
        assert_eq!(s.region, "eu-central-1");
        assert!(s.path_style, "a custom endpoint is addressed path-style");
    }

    #[test]
    fn the_default_profile_is_used_when_none_is_named() {
        let h = home();
        let (_, s) = resolve(&[("HOME", h.path().to_str().unwrap())]).unwrap();
        assert_eq!(s.credentials, CredentialSource::Profile("default".into()));
        assert_eq!(s.region, DEFAULT_REGION);
        assert_eq!(s.endpoint, None);
        assert!(!s.path_style, "AWS itself is addressed virtual-hosted");
    }

    #[test]
    fn a_named_profile_must_exist_and_be_supported() {
        let h = home();
        let home = h.path().to_str().unwrap();
        let err = resolve(&[("HOME", home), ("AWS_PROFILE", "nope")]).unwrap_err();
        assert!(matches!(err, S3Error::NoProfile { .. }), "{err}");
        let err = resolve(&[("HOME", home), ("AWS_PROFILE", "sso")]).unwrap_err();
        assert!(err.to_string().contains("sso_session"), "{err}");
    }

    #[test]
    fn region_and_endpoint_variables_follow_aws_precedence() {
        let (b, s) = resolve(&[
            ("HOME", "/nonexistent"),
            ("AWS_DEFAULT_REGION", "ap-south-1"),
            ("AWS_REGION", "us-west-2"),
            ("AWS_ENDPOINT_URL", "https://minio.example:9000"),
        ])
        .unwrap();
        assert_eq!(s.region, "us-west-2");
        assert_eq!(s.endpoint.as_deref(), Some("https://minio.example:9000"));
        assert!(s.path_style);
        assert_eq!(
            get(&b, AmazonS3ConfigKey::Region).as_deref(),
            Some("us-west-2")
        );
        let (_, s) = resolve(&[
            ("HOME", "/nonexistent"),
            ("AWS_DEFAULT_REGION", "ap-south-1"),
        ])
        .unwrap();
        assert_eq!(s.region, "ap-south-1");
        assert_eq!(s.credentials, CredentialSource::InstanceMetadata);
    }

    #[test]
    fn identity_sources_are_recognised() {
        let (_, s) = resolve(&[
            ("HOME", "/nonexistent"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ])
        .unwrap();
        assert_eq!(s.credentials, CredentialSource::WebIdentity);
        let (_, s) = resolve(&[
            ("HOME", "/nonexistent"),
            (
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/credentials/x",
            ),
        ])
        .unwrap();
        assert_eq!(s.credentials, CredentialSource::Container);
    }

    #[test]
    fn virtual_hosted_style_can_be_forced_either_way() {
        let (_, s) = resolve(&[
            ("HOME", "/nonexistent"),
            ("AWS_ENDPOINT_URL", "http://localhost:9000"),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "true"),
        ])
        .unwrap();
        assert!(!s.path_style);
        let (_, s) = resolve(&[
            ("HOME", "/nonexistent"),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
        ])
        .unwrap();
        assert!(s.path_style);
    }
}
