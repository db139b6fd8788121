//! The krew round trip, for real and offline: scripts/dist.sh packages the
//! test binary, validate-krew-manifest checks the manifests, and the real
//! kubectl (plugin discovery) runs the real krew v0.4.3 to install the
//! archive, run `kubectl nautes`, and uninstall it.
//!
//! What krew needs to stay offline, from its v0.4.3 source:
//! - `install --manifest=M --archive=A` reads neither the index nor the
//!   network: it skips the index update when --manifest is given, and reads
//!   the archive from A (checking it against the sha256 of this platform's
//!   entry in M) instead of downloading the `uri`.
//! - `uninstall` refuses to run without a local index ("krew local plugin
//!   index is not initialized"): the index must be a git clone. The test
//!   makes a small local git repository and points KREW_DEFAULT_INDEX_URI at
//!   it, so `kubectl krew update` clones it with git from disk.
//! - KREW_NO_UPGRADE_CHECK: otherwise a released krew asks the GitHub API
//!   for its latest version on 40% of runs.
//! - validate-krew-manifest takes the plugin name from the file name, so the
//!   manifest is validated as a copy named nautes.yaml; and without
//!   -skip-install it runs `kubectl krew install --manifest` for every
//!   platform, which downloads each `uri` from the release page: that part
//!   cannot run offline (nor before the release exists), so it runs with
//!   -skip-install and this test does the install of this platform itself,
//!   including the validator's check that a LICENSE file gets installed.
//!
//! Every command runs with a cleared environment (so no HTTP(S)_PROXY, no
//! KUBECONFIG, no user krew or git configuration): a temporary HOME,
//! KREW_ROOT and TMPDIR, and a PATH of only $KREW_ROOT/bin, the test bed's
//! binaries (kubectl, kubectl-krew) and a directory holding git.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::Run;

const PLACEHOLDER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn run(cmd: &mut Command) -> Run {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// krew's names for this machine.
fn platform() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "linux" => "linux",
        "macos" => "darwin",
        other => panic!("the krew test runs on Linux and macOS, not {other}"),
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no release archive for {other}"),
    };
    (os, arch)
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read_yaml(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// validate-krew-manifest on a copy of `manifest` named nautes.yaml.
fn validate(bin: &Path, manifest: &Path, scratch: &Path) -> Run {
    let dir = scratch.join("validate");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("nautes.yaml");
    std::fs::copy(manifest, &copy).unwrap();
    run(Command::new(bin.join("validate-krew-manifest"))
        .env_clear()
        .env("TMPDIR", scratch)
        .args(["-skip-install", "-manifest"])
        .arg(&copy))
}

/// The environment of every kubectl and krew command.
struct Env {
    path: String,
    home: PathBuf,
    krew_root: PathBuf,
    index: PathBuf,
    tmp: PathBuf,
}

impl Env {
    fn command(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", &self.home)
            .env("TMPDIR", &self.tmp)
            .env("KREW_ROOT", &self.krew_root)
            .env("KREW_NO_UPGRADE_CHECK", "1")
            .env("KREW_DEFAULT_INDEX_URI", &self.index)
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "nautes test")
            .env("GIT_AUTHOR_EMAIL", "test@nautes.invalid")
            .env("GIT_COMMITTER_NAME", "nautes test")
            .env("GIT_COMMITTER_EMAIL", "test@nautes.invalid")
            .env("NO_COLOR", "1");
        cmd
    }

    /// kubectl from PATH (the test bed's), as a user types it.
    fn kubectl(&self, args: &[&str]) -> Run {
        // the test bed's kubectl (first on PATH anyway); it looks plugins up
        // in the PATH set here
        let kubectl = crate::testbed::bin_dir().join("kubectl");
        run(&mut self.command(kubectl, args))
    }

    fn git(&self, dir: &Path, args: &[&str]) {
        let r = run(self.command("git", args).current_dir(dir));
        assert_eq!(r.code, 0, "git {args:?}: {r:?}");
    }
}

#[test]
fn krew_installs_runs_and_uninstalls_the_release_archive() {
    let bin = crate::testbed::bin_dir();
    for tool in ["kubectl", "kubectl-krew", "validate-krew-manifest"] {
        assert!(
            bin.join(tool).is_file(),
            "the test bed has no {tool} in {}: run `make testbed`",
            bin.display()
        );
    }
    let (os, arch) = platform();
    let version = env!("CARGO_PKG_VERSION");
    let tag = format!("v{version}");
    let tmp = tempfile::Builder::new()
        .prefix("nautes-krew-")
        .tempdir()
        .expect("temp dir");
    let t = tmp.path();

    // 1. the release archive and manifest, from scripts/dist.sh
    let dist = t.join("dist");
    let r = run(Command::new(crate::repo().join("scripts/dist.sh"))
        .env("NAUTES_DIST_BINARY", crate::binary())
        .env("NAUTES_DIST_DIR", &dist)
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("http_proxy"));
    r.ok();
    let name = format!("kubectl-nautes_{tag}_{os}_{arch}.tar.gz");
    let archive = dist.join(&name);
    let manifest = dist.join("krew-manifest.yaml");
    assert!(archive.is_file(), "no {}: {r:?}", archive.display());
    assert!(manifest.is_file(), "no {}: {r:?}", manifest.display());
    assert!(
        r.stdout.contains(&format!("wrote {}", archive.display()))
            && r.stdout.contains(&format!("wrote {}", manifest.display())),
        "dist.sh does not say what it wrote: {r:?}"
    );

    // the archive holds the binary and LICENSE at its root, nothing else
    let list = run(Command::new("tar").arg("-tzf").arg(&archive));
    list.ok();
    let mut entries: Vec<&str> = list.stdout.lines().collect();
    entries.sort_unstable();
    assert_eq!(entries, ["LICENSE", "kubectl-nautes"], "archive entries");

    // the generated manifest: the repository's, with this platform's digest
    let sum = sha256_hex(&archive);
    let sum_file = std::fs::read_to_string(dist.join(format!("{name}.sha256"))).unwrap();
    assert_eq!(sum_file, format!("{sum}  {name}\n"));
    let repo_manifest = read_yaml(&crate::repo().join("krew-manifest.yaml"));
    let generated = read_yaml(&manifest);
    assert_eq!(generated["metadata"]["name"], "nautes");
    assert_eq!(generated["spec"]["version"], tag.as_str());
    assert_eq!(repo_manifest["spec"]["version"], tag.as_str());
    let platforms = generated["spec"]["platforms"]
        .as_array()
        .expect("platforms");
    let repo_platforms = repo_manifest["spec"]["platforms"].as_array().unwrap();
    assert_eq!(
        platforms.len(),
        5,
        "linux and darwin amd64/arm64, windows amd64"
    );
    assert_eq!(platforms.len(), repo_platforms.len());
    let mut mine = 0;
    for (p, rp) in platforms.iter().zip(repo_platforms) {
        let labels = &p["selector"]["matchLabels"];
        let (p_os, p_arch) = (
            labels["os"].as_str().unwrap(),
            labels["arch"].as_str().unwrap(),
        );
        let ext = if p_os == "windows" { "zip" } else { "tar.gz" };
        let exe = if p_os == "windows" { ".exe" } else { "" };
        assert_eq!(
            p["uri"],
            format!(
                "https://github.com/nautes-labs/kubectl-nautes/releases/download/{tag}/kubectl-nautes_{tag}_{p_os}_{p_arch}.{ext}"
            )
            .as_str()
        );
        assert_eq!(p["bin"], format!("kubectl-nautes{exe}").as_str());
        let files: Vec<&str> = p["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["from"].as_str().unwrap())
            .collect();
        assert_eq!(files, [format!("kubectl-nautes{exe}").as_str(), "LICENSE"]);
        assert_eq!(
            rp["sha256"], PLACEHOLDER,
            "the repository's manifest keeps placeholders"
        );
        if (p_os, p_arch) == (os, arch) {
            mine += 1;
            assert_eq!(p["sha256"], sum.as_str(), "this platform's digest");
        } else {
            assert_eq!(
                p["sha256"], PLACEHOLDER,
                "{p_os}/{p_arch} has no archive here"
            );
        }
        let mut unfilled = p.clone();
        unfilled["sha256"] = rp["sha256"].clone();
        assert_eq!(&unfilled, rp, "otherwise the repository's entry");
    }
    assert_eq!(mine, 1, "one platform entry for {os}/{arch}");

    // 2. validate-krew-manifest, on the repository's and the generated one
    for m in [crate::repo().join("krew-manifest.yaml"), manifest.clone()] {
        let v = validate(&bin, &m, t);
        assert_eq!(v.code, 0, "validate-krew-manifest {}: {v:?}", m.display());
        for step in [
            "structural validation OK",
            "all spec.platform[] items are used",
            "no overlapping spec.platform[].selector",
        ] {
            assert!(v.stderr.contains(step), "{step}: {v:?}");
        }
    }
    // (under its own file name it is refused: the name is taken from it)
    let v = run(Command::new(bin.join("validate-krew-manifest"))
        .env_clear()
        .args(["-skip-install", "-manifest"])
        .arg(&manifest));
    assert_ne!(v.code, 0, "{v:?}");
    assert!(
        v.stderr
            .contains(r#"plugin should be named "krew-manifest", not "nautes""#),
        "{v:?}"
    );

    // 3. krew, through kubectl's plugin discovery
    let home = t.join("home");
    let krew_root = t.join("krew");
    let tools = t.join("tools");
    let scratch = t.join("tmp");
    for d in [&home, &tools, &scratch] {
        std::fs::create_dir_all(d).unwrap();
    }
    let git = which::which("git").expect("git is needed: krew keeps its index as a git clone");
    std::os::unix::fs::symlink(&git, tools.join("git")).unwrap();
    let path = std::env::join_paths([krew_root.join("bin"), bin.clone(), tools.clone()])
        .unwrap()
        .into_string()
        .unwrap();
    let env = Env {
        path,
        home,
        krew_root: krew_root.clone(),
        index: t.join("index"),
        tmp: scratch,
    };

    // a local plugin index (a git repository) stands in for krew-index
    std::fs::create_dir_all(env.index.join("plugins")).unwrap();
    std::fs::write(
        env.index.join("plugins/README.md"),
        "An empty local krew index for the test.\n",
    )
    .unwrap();
    env.git(&env.index, &["init", "--quiet"]);
    env.git(&env.index, &["add", "--all"]);
    env.git(&env.index, &["commit", "--quiet", "-m", "index"]);
    let r = env.kubectl(&["krew", "update"]);
    assert_eq!(r.code, 0, "kubectl krew update (local index): {r:?}");
    assert!(
        r.stderr.contains("Updated the local copy of plugin index"),
        "{r:?}"
    );

    // nothing on this PATH answers `kubectl nautes` yet
    let r = env.kubectl(&["nautes", "version"]);
    assert_ne!(r.code, 0, "kubectl nautes before install: {r:?}");
    assert!(r.stderr.contains(r#"unknown command "nautes""#), "{r:?}");

    let manifest_arg = format!("--manifest={}", manifest.display());
    let archive_arg = format!("--archive={}", archive.display());
    let r = env.kubectl(&["krew", "install", &manifest_arg, &archive_arg]);
    assert_eq!(r.code, 0, "kubectl krew install: {r:?}");
    assert!(r.stderr.contains("Installed plugin: nautes"), "{r:?}");

    let store = krew_root.join("store/nautes").join(&tag);
    assert!(
        store.join("kubectl-nautes").is_file(),
        "{}",
        store.display()
    );
    assert_eq!(
        std::fs::read(store.join("LICENSE")).unwrap(),
        std::fs::read(crate::repo().join("LICENSE")).unwrap(),
        "LICENSE installed with the plugin"
    );
    let link = krew_root.join("bin/kubectl-nautes");
    assert_eq!(
        std::fs::read_link(&link).expect("krew's link to the plugin"),
        store.join("kubectl-nautes")
    );

    let r = env.kubectl(&["plugin", "list"]);
    assert_eq!(r.code, 0, "kubectl plugin list: {r:?}");
    assert!(r.stdout.contains(&link.display().to_string()), "{r:?}");
    let r = env.kubectl(&["krew", "list"]);
    assert_eq!(r.code, 0, "kubectl krew list: {r:?}");
    assert!(r.stdout.lines().any(|l| l.ends_with("nautes")), "{r:?}");

    let r = env.kubectl(&["nautes", "version", "-o", "json"]);
    assert_eq!(r.code, 0, "kubectl nautes version -o json: {r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("version output is not JSON ({e}): {r:?}"));
    assert_eq!(v["version"], version, "{r:?}");

    // 4. uninstall: the plugin is gone from kubectl
    let r = env.kubectl(&["krew", "uninstall", "nautes"]);
    assert_eq!(r.code, 0, "kubectl krew uninstall: {r:?}");
    assert!(r.stderr.contains("Uninstalled plugin: nautes"), "{r:?}");
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "{} is left",
        link.display()
    );
    assert!(!krew_root.join("store/nautes").exists(), "store is left");

    let r = env.kubectl(&["nautes", "version"]);
    assert_ne!(r.code, 0, "kubectl nautes after uninstall: {r:?}");
    assert!(r.stderr.contains(r#"unknown command "nautes""#), "{r:?}");
}
