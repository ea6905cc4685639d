//! docs/k8s/*.yaml and the compose file in docs/containers.md: they parse,
//! and what would only fail on a cluster (a mount of an undeclared volume, a
//! password file outside any Secret mount) fails here. Schema checks run
//! where `kubernetes-validate` and `docker-compose` are installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("docs/k8s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// `value` at a dotted path, failing with the path if any step is missing.
fn at<'a>(value: &'a Value, path: &str, file: &Path) -> &'a Value {
    path.split('.').fold(value, |v, key| {
        let next = match key.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(key),
        };
        next.unwrap_or_else(|| panic!("{}: no {path} (stopped at {key})", file.display()))
    })
}

fn str_at<'a>(value: &'a Value, path: &str, file: &Path) -> &'a str {
    at(value, path, file)
        .as_str()
        .unwrap_or_else(|| panic!("{}: {path} is not a string", file.display()))
}

fn list_at<'a>(value: &'a Value, path: &str, file: &Path) -> &'a Vec<Value> {
    at(value, path, file)
        .as_sequence()
        .unwrap_or_else(|| panic!("{}: {path} is not a list", file.display()))
}

fn pod_spec<'a>(doc: &'a Value, file: &Path) -> Option<&'a Value> {
    match str_at(doc, "kind", file) {
        "CronJob" => Some(at(doc, "spec.jobTemplate.spec.template.spec", file)),
        "Job" => Some(at(doc, "spec.template.spec", file)),
        _ => None,
    }
}

/// Every mount names a declared volume, every volume is mounted, and the
/// `--password-file` lies under a mounted Secret.
fn check_pod(spec: &Value, file: &Path) -> Vec<String> {
    let policy = str_at(spec, "restartPolicy", file);
    assert!(
        ["Never", "OnFailure"].contains(&policy),
        "{}: restartPolicy {policy}",
        file.display()
    );
    let volumes = list_at(spec, "volumes", file);
    let declared: Vec<&str> = volumes.iter().map(|v| str_at(v, "name", file)).collect();
    let mut claims = Vec::new();
    for v in volumes {
        if let Some(claim) = v.get("persistentVolumeClaim") {
            claims.push(str_at(claim, "claimName", file).to_string());
        }
    }
    let mut mounted = Vec::new();
    for c in list_at(spec, "containers", file) {
        assert!(!str_at(c, "image", file).is_empty());
        let args: Vec<&str> = list_at(c, "args", file)
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mounts = list_at(c, "volumeMounts", file);
        for m in mounts {
            let name = str_at(m, "name", file);
            assert!(
                declared.contains(&name),
                "{}: mount of undeclared volume {name}",
                file.display()
            );
            mounted.push(name);
        }
        let password = args
            .iter()
            .find_map(|a| a.strip_prefix("--password-file="))
            .unwrap_or_else(|| panic!("{}: no --password-file", file.display()));
        let from_secret = mounts.iter().any(|m| {
            let dir = str_at(m, "mountPath", file);
            let volume = volumes
                .iter()
                .find(|v| v.get("name") == m.get("name"))
                .unwrap();
            volume.get("secret").is_some() && Path::new(password).starts_with(dir)
        });
        assert!(
            from_secret,
            "{}: {password} is not in a mounted Secret",
            file.display()
        );
    }
    for name in declared {
        assert!(
            mounted.contains(&name),
            "{}: volume {name} is never mounted",
            file.display()
        );
    }
    claims
}

#[test]
fn kubernetes_manifests_have_what_a_cluster_needs() {
    let files = manifests();
    let kinds: Vec<String> = files
        .iter()
        .flat_map(|f| {
            documents(f)
                .into_iter()
                .map(|d| d["kind"].as_str().unwrap_or("").to_string())
        })
        .collect();
    for kind in ["CronJob", "Job", "PersistentVolumeClaim"] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "no {kind} in docs/k8s: {kinds:?}"
        );
    }
    for file in &files {
        let docs = documents(file);
        let defined: Vec<&str> = docs
            .iter()
            .filter(|d| d["kind"] == "PersistentVolumeClaim")
            .map(|d| str_at(d, "metadata.name", file))
            .collect();
        for doc in &docs {
            str_at(doc, "apiVersion", file);
            str_at(doc, "metadata.name", file);
            if doc["kind"] == "CronJob" {
                let schedule = str_at(doc, "spec.schedule", file);
                assert_eq!(
                    schedule.split_whitespace().count(),
                    5,
                    "{}: schedule {schedule}",
                    file.display()
                );
            }
            let Some(spec) = pod_spec(doc, file) else {
                continue;
            };
            let claims = check_pod(spec, file);
            // A restore writes into a claim the same file creates.
            if doc["kind"] == "Job" {
                for claim in claims {
                    assert!(
                        defined.contains(&claim.as_str()),
                        "{}: claim {claim} is not defined here",
                        file.display()
                    );
                }
            }
        }
    }
}

#[test]
fn kubernetes_manifests_match_the_api_schema() {
    let files = manifests();
    let run = Command::new("kubernetes-validate")
        .arg("--strict")
        .arg("--quiet")
        .args(&files)
        .output();
    match run {
        Err(_) => eprintln!(
            "skipping the schema check of docs/k8s: kubernetes-validate is not installed \
             (pip install kubernetes-validate); kubectl cannot validate without a cluster"
        ),
        Ok(out) => assert!(
            out.status.success(),
            "kubernetes-validate:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The compose file shown in docs/containers.md.
fn compose_file() -> String {
    let page = std::fs::read_to_string(repo().join("docs/containers.md")).unwrap();
    let start = page
        .find("```yaml\n# compose.yaml\n")
        .expect("compose block in docs/containers.md");
    let body = &page[start + "```yaml\n".len()..];
    body[..body.find("```").unwrap()].to_string()
}

#[test]
fn the_compose_example_mounts_volumes_read_only_into_cairn() {
    let text = compose_file();
    let compose: Value = serde_yaml::from_str(&text).unwrap();
    let file = Path::new("docs/containers.md (compose)");
    let backup = at(&compose, "services.backup", file);
    assert_eq!(str_at(backup, "image", file), "cairn:latest");
    let mounts: Vec<&str> = list_at(backup, "volumes", file)
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(mounts.contains(&"/var/run/docker.sock:/var/run/docker.sock"));
    let command: Vec<&str> = list_at(backup, "command", file)
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for arg in command
        .iter()
        .filter_map(|a| a.strip_prefix("--docker-volume="))
    {
        // Backed-up volumes are fixed-name, read-only mounts of the backup.
        assert!(
            mounts.contains(&format!("{arg}:/volumes/{arg}:ro").as_str()),
            "{arg} not mounted read-only"
        );
        assert_eq!(str_at(&compose, &format!("volumes.{arg}.name"), file), arg);
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), &text).unwrap();
    match Command::new("docker-compose")
        .args(["-f", "compose.yaml", "config", "-q"])
        .current_dir(dir.path())
        .output()
    {
        Err(_) => eprintln!("skipping docker-compose config: docker-compose is not installed"),
        Ok(out) => assert!(
            out.status.success(),
            "docker-compose config: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
