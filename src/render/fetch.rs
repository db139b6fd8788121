//! Charts from their repositories, kept in the user's cache: without
//! --charts-dir, each chart of the plan is fetched once with `helm pull`
//! (which honours the proxy settings and credentials helm users already
//! have) into `<cache>/charts/<repository key>/<name>-<version>.tgz`, and
//! rendered from there. A second run finds it and downloads nothing. What
//! is fetched is checked like a chart of --charts-dir (name, version,
//! dependencies) before anything is rendered.
//!
//! The catalog's repository of a component can be replaced with
//! `--chart-repository NAME=URL` (a mirror, or a repository served in the
//! tests).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, ExitCode, Result};
use crate::plan::Component;

/// The repository a component's chart comes from: the override given for
/// the component (by its name or its chart's name), else the catalog's.
pub fn repository_of<'a>(c: &'a Component, overrides: &'a BTreeMap<String, String>) -> &'a str {
    overrides
        .get(&c.name)
        .or_else(|| overrides.get(&c.chart.name))
        .map_or(c.chart.repository.as_str(), String::as_str)
}

/// Whether a repository is only a git tree (HNC's): helm cannot pull from it.
pub fn is_git_tree(repository: &str) -> bool {
    !repository.starts_with("oci://") && repository.contains("/tree/")
}

/// The directory of the cache that holds the charts of one repository.
pub fn repository_dir(cache: &Path, repository: &str) -> PathBuf {
    let digest = Sha256::digest(repository.trim_end_matches('/').as_bytes());
    let key: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    cache.join("charts").join(key)
}

/// The default cache directory: $XDG_CACHE_HOME/kubectl-nautes, else
/// ~/.cache/kubectl-nautes.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("kubectl-nautes"))
}

/// A repository URL fit to show: any user and password removed.
pub fn shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if path.is_empty() && !rest.contains('/') {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}/{path}")
            }
        }
        None => url.to_string(),
    }
}

/// The chart archive of a component in the cache, fetched with `helm pull`
/// when it is not there yet. Returns its path and whether it was fetched.
pub async fn ensure(
    helm: &Path,
    c: &Component,
    repository: &str,
    cache: &Path,
) -> Result<(PathBuf, bool)> {
    let dir = repository_dir(cache, repository);
    let file = dir.join(format!("{}-{}.tgz", c.chart.name, c.chart.version));
    if file.is_file() {
        return Ok((file, false));
    }
    std::fs::create_dir_all(&dir).map_err(|e| {
        Error::internal(format!(
            "cannot create the chart cache {}: {e}",
            dir.display()
        ))
    })?;
    // for people looking into the cache: which repository this is
    let _ = std::fs::write(dir.join("REPOSITORY"), format!("{}\n", shown(repository)));
    // pulled into a directory of its own, then moved into place whole, so a
    // run that stops half-way or a second run at once leaves no torn file
    let tmp = PullDir::new(&dir)?;
    let mut cmd = tokio::process::Command::new(helm);
    cmd.arg("pull");
    if let Some(oci) = repository.strip_prefix("oci://") {
        cmd.arg(format!(
            "oci://{}/{}",
            oci.trim_end_matches('/'),
            c.chart.name
        ));
    } else {
        cmd.args([c.chart.name.as_str(), "--repo", repository]);
    }
    cmd.args(["--version", &c.chart.version, "--destination"])
        .arg(tmp.0.as_path())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = cmd
        .output()
        .await
        .map_err(|e| Error::missing(format!("cannot run helm at {}: {e}", helm.display())))?;
    if !out.status.success() {
        return Err(pull_failure(
            c,
            repository,
            &String::from_utf8_lossy(&out.stderr),
        ));
    }
    let pulled = tmp
        .0
        .join(format!("{}-{}.tgz", c.chart.name, c.chart.version));
    if !pulled.is_file() {
        let got: Vec<String> = std::fs::read_dir(tmp.0.as_path())
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        return Err(Error::missing(format!(
            "chart repository {} gave, for chart {} {} of component {}, {} instead of {}-{}.tgz",
            shown(repository),
            c.chart.name,
            c.chart.version,
            c.name,
            if got.is_empty() {
                "nothing".to_string()
            } else {
                got.join(", ")
            },
            c.chart.name,
            c.chart.version
        )));
    }
    std::fs::rename(&pulled, &file).map_err(|e| {
        Error::internal(format!(
            "cannot move the fetched chart into {}: {e}",
            file.display()
        ))
    })?;
    Ok((file, true))
}

/// A directory for one `helm pull`, removed when dropped.
struct PullDir(PathBuf);

impl PullDir {
    fn new(parent: &Path) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = parent.join(format!(".pull-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path)
            .map_err(|e| Error::internal(format!("cannot write to {}: {e}", parent.display())))?;
        Ok(Self(path))
    }
}

impl Drop for PullDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One line for a failed `helm pull`: what went wrong, by kind, with the
/// repository (without credentials) and what to do.
fn pull_failure(c: &Component, repository: &str, stderr: &str) -> Error {
    let url = shown(repository);
    // helm's last line says it; credentials in the URL are not repeated
    let mut said = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .trim_start_matches("Error: ")
        .to_string();
    if url != repository {
        said = said.replace(repository, &url);
    }
    let what = format!(
        "chart {} {} of component {} from repository {url}",
        c.chart.name, c.chart.version, c.name
    );
    let way_out = format!(
        "fetch it elsewhere (`helm pull {} --repo <url> --version {}`) and give its directory with --charts-dir, or give a mirror with --chart-repository {}=<url>",
        c.chart.name, c.chart.version, c.name
    );
    let lower = said.to_ascii_lowercase();
    let unreachable = [
        "connection refused",
        "no such host",
        "i/o timeout",
        "dial tcp",
        "connection reset",
        "tls:",
        "x509:",
        "network is unreachable",
        "deadline exceeded",
    ];
    if unreachable.iter().any(|u| lower.contains(u)) {
        return Error::new(
            ExitCode::Unreachable,
            format!("{what}: the repository could not be reached ({said}); {way_out}"),
        );
    }
    let problem = if lower.contains("404") {
        format!("the repository answered 404 Not Found ({said})")
    } else if lower.contains("not found in") {
        format!("the repository's index has no such chart or version ({said})")
    } else if lower.contains("yaml") || lower.contains("json") || lower.contains("index") {
        format!("the repository's index.yaml is not a Helm repository index ({said})")
    } else {
        format!("helm pull failed ({said})")
    };
    Error::missing(format!("{what}: {problem}; {way_out}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_repository_url_are_never_shown() {
        assert_eq!(
            shown("https://user:s3cret@charts.example.com/stable"),
            "https://charts.example.com/stable"
        );
        assert_eq!(
            shown("https://charts.example.com"),
            "https://charts.example.com"
        );
        assert_eq!(shown("oci://tok@ghcr.io/org"), "oci://ghcr.io/org");
    }

    #[test]
    fn a_repository_has_one_cache_directory_whatever_its_trailing_slash() {
        let cache = Path::new("/c");
        assert_eq!(
            repository_dir(cache, "https://a.example/charts/"),
            repository_dir(cache, "https://a.example/charts")
        );
        assert_ne!(
            repository_dir(cache, "https://a.example/charts"),
            repository_dir(cache, "https://b.example/charts")
        );
    }
}
