//! Checks of the charts given with --charts-dir, before anything is rendered:
//! each chart of the plan is there, its Chart.yaml names the chart and the
//! version the catalog pins, and every dependency its Chart.yaml declares is
//! carried under its `charts/` directory (as `helm template` requires). Every
//! problem of every chart is reported in one error.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::plan::{Component, Plan};

/// Where a component's chart is in --charts-dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    Dir(PathBuf),
    Tgz(PathBuf),
}

impl Located {
    pub fn path(&self) -> &Path {
        match self {
            Located::Dir(p) | Located::Tgz(p) => p,
        }
    }
}

/// Finds a component's chart in --charts-dir: `<name>/` or `<name>-<version>.tgz`.
pub fn locate(c: &Component, dir: &Path) -> Result<Located> {
    let as_dir = dir.join(&c.chart.name);
    let as_tgz = dir.join(format!("{}-{}.tgz", c.chart.name, c.chart.version));
    if as_dir.join("Chart.yaml").is_file() {
        Ok(Located::Dir(as_dir))
    } else if as_tgz.is_file() {
        Ok(Located::Tgz(as_tgz))
    } else {
        Err(Error::missing(format!(
            "chart {} {} for component {} is not in --charts-dir {}: expected {} or {} (get it with `helm pull {} --repo {} --version {}`)",
            c.chart.name,
            c.chart.version,
            c.name,
            dir.display(),
            as_dir.display(),
            as_tgz.display(),
            c.chart.name,
            c.chart.repository,
            c.chart.version
        )))
    }
}

/// What a chart says about itself.
#[derive(Debug, Default, PartialEq)]
struct ChartInfo {
    name: String,
    version: String,
    /// (name, version) of each `dependencies:` entry of its Chart.yaml.
    dependencies: Vec<(String, String)>,
    /// The names (from their Chart.yaml) of the subcharts under `charts/`.
    subcharts: Vec<String>,
}

/// A Chart.yaml: its name, version and declared dependencies (no subcharts).
fn parse_chart_yaml(source: &str, text: &str) -> std::result::Result<ChartInfo, String> {
    let v: Value =
        serde_saphyr::from_str(text).map_err(|e| format!("{source}: not valid YAML: {e}"))?;
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let name = scalar(&v["name"]).ok_or_else(|| format!("{source}: has no `name`"))?;
    let version = scalar(&v["version"]).ok_or_else(|| format!("{source}: has no `version`"))?;
    let mut deps = Vec::new();
    match &v["dependencies"] {
        Value::Null => {}
        Value::Array(items) => {
            for (i, d) in items.iter().enumerate() {
                let dn = scalar(&d["name"])
                    .ok_or_else(|| format!("{source}: dependencies[{i}] has no `name`"))?;
                deps.push((dn, scalar(&d["version"]).unwrap_or_default()));
            }
        }
        _ => return Err(format!("{source}: `dependencies` is not a list")),
    }
    Ok(ChartInfo {
        name,
        version,
        dependencies: deps,
        subcharts: Vec::new(),
    })
}

/// A chart directory.
fn read_dir_chart(dir: &Path) -> std::result::Result<ChartInfo, String> {
    let file = dir.join("Chart.yaml");
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let mut info = parse_chart_yaml(&file.display().to_string(), &text)?;
    let sub = dir.join("charts");
    if let Ok(entries) = std::fs::read_dir(&sub) {
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if p.join("Chart.yaml").is_file() {
                info.subcharts.push(read_dir_chart(&p)?.name);
            } else if p.is_file() && is_archive(&p.to_string_lossy()) {
                let bytes =
                    std::fs::read(&p).map_err(|e| format!("{}: cannot read: {e}", p.display()))?;
                info.subcharts
                    .push(read_tgz_chart(&p.display().to_string(), &bytes)?.name);
            }
        }
    }
    Ok(info)
}

fn is_archive(name: &str) -> bool {
    name.ends_with(".tgz") || name.ends_with(".tar.gz")
}

/// Archives larger than this (unpacked) are refused: charts are small.
const MAX_UNPACKED: u64 = 256 << 20;

/// A packaged chart (`helm package`, `helm pull`): a gzipped tar whose
/// entries all sit under one top directory.
fn read_tgz_chart(source: &str, bytes: &[u8]) -> std::result::Result<ChartInfo, String> {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_UNPACKED + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("{source}: not a gzip archive: {e}"))?;
    if raw.len() as u64 > MAX_UNPACKED {
        return Err(format!(
            "{source}: unpacks to more than {} MiB",
            MAX_UNPACKED >> 20
        ));
    }
    let entries = tar_entries(&raw).map_err(|e| format!("{source}: not a tar archive: {e}"))?;
    // paths relative to the chart: the top directory stripped, as helm does
    let rel = |path: &str| path.split_once('/').map(|(_, r)| r.to_string());
    let chart_yaml = entries
        .iter()
        .find(|(p, _)| rel(p).as_deref() == Some("Chart.yaml"))
        .ok_or_else(|| format!("{source}: holds no <chart>/Chart.yaml"))?;
    let text = String::from_utf8_lossy(&chart_yaml.1);
    let mut info = parse_chart_yaml(&format!("{source}: Chart.yaml"), &text)?;
    for (p, data) in &entries {
        let Some(r) = rel(p) else { continue };
        let Some(under) = r.strip_prefix("charts/") else {
            continue;
        };
        match under.split_once('/') {
            Some((_, "Chart.yaml")) => {
                let text = String::from_utf8_lossy(data);
                info.subcharts
                    .push(parse_chart_yaml(&format!("{source}: {r}"), &text)?.name);
            }
            None if is_archive(under) => {
                info.subcharts
                    .push(read_tgz_chart(&format!("{source}: {r}"), data)?.name);
            }
            _ => {}
        }
    }
    Ok(info)
}

/// The regular files of a tar archive: (path, content), read with the
/// `tar` crate (ustar, PAX and GNU long names).
fn tar_entries(raw: &[u8]) -> std::result::Result<Vec<(String, Vec<u8>)>, String> {
    let mut archive = tar::Archive::new(raw);
    let mut out = Vec::new();
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| e.to_string())?;
        out.push((path, data));
    }
    Ok(out)
}

/// Checks every chart of a plan in --charts-dir, before anything is
/// rendered: present, the pinned name and version, dependencies carried.
/// Every problem of every chart is named in one error (exit 8).
/// `dir_for` gives the directory each component's chart is looked for in,
/// `label` names where that is in the error.
pub fn check(plan: &Plan, dir_for: impl Fn(&Component) -> PathBuf, label: &str) -> Result<()> {
    let mut problems: Vec<String> = Vec::new();
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for c in plan.stages.iter().flat_map(|s| &s.components) {
        if seen.contains(&(c.chart.name.as_str(), c.chart.version.as_str())) {
            continue;
        }
        seen.push((&c.chart.name, &c.chart.version));
        let located = match locate(c, &dir_for(c)) {
            Ok(l) => l,
            Err(e) => {
                problems.push(e.message);
                continue;
            }
        };
        let path = located.path();
        let info = match &located {
            Located::Dir(p) => read_dir_chart(p),
            Located::Tgz(p) => std::fs::read(p)
                .map_err(|e| format!("{}: cannot read: {e}", p.display()))
                .and_then(|b| read_tgz_chart(&p.display().to_string(), &b)),
        };
        let info = match info {
            Ok(i) => i,
            Err(e) => {
                problems.push(format!(
                    "{e} (chart {} of component {})",
                    c.chart.name, c.name
                ));
                continue;
            }
        };
        if info.name != c.chart.name {
            problems.push(format!(
                "{}: its Chart.yaml names chart {:?} (version {}), but component {} pins chart {} {}",
                path.display(),
                info.name,
                info.version,
                c.name,
                c.chart.name,
                c.chart.version
            ));
        }
        if info.version != c.chart.version {
            problems.push(format!(
                "chart {} of component {} at {} is version {}, the catalog pins {} (get it with `helm pull {} --repo {} --version {}`)",
                c.chart.name,
                c.name,
                path.display(),
                info.version,
                c.chart.version,
                c.chart.name,
                c.chart.repository,
                c.chart.version
            ));
        }
        let missing: Vec<String> = info
            .dependencies
            .iter()
            .filter(|(n, _)| !info.subcharts.contains(n))
            .map(|(n, v)| {
                if v.is_empty() {
                    n.clone()
                } else {
                    format!("{n} {v}")
                }
            })
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "chart {} of component {} at {}: dependency(ies) declared in its Chart.yaml but missing under its charts/ directory: {} (`helm dependency build` fetches them; a chart from `helm pull` carries them)",
                c.chart.name,
                c.name,
                path.display(),
                missing.join(", ")
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::missing(format!(
        "{label}: {} problem(s) with the charts of the plan, nothing was rendered:\n  {}",
        problems.len(),
        problems.join("\n  ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar entry (ustar header) of a regular file.
    /// A gzipped tar of regular files, written with the `tar` crate (GNU
    /// long names for paths over 100 bytes).
    fn tgz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (n, d) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut h, n, *d).expect("tar entry");
        }
        let tar = builder.into_inner().expect("tar");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).expect("gzip");
        gz.finish().expect("gzip")
    }

    #[test]
    fn a_packaged_chart_gives_its_name_version_dependencies_and_subcharts() {
        let sub = tgz(&[("b/Chart.yaml", b"name: b\nversion: 2.0.0\n")]);
        let archive = tgz(&[
            (
                "a/Chart.yaml",
                b"name: a\nversion: 1.0.0\ndependencies:\n- name: b\n  version: 2.0.0\n- name: c\n  version: 3.0.0\n- name: d\n",
            ),
            ("a/templates/x.yaml", b"kind: ConfigMap\n"),
            ("a/charts/b-2.0.0.tgz", &sub),
            ("a/charts/c/Chart.yaml", b"name: c\nversion: 3.0.0\n"),
        ]);
        let info = read_tgz_chart("a.tgz", &archive).expect("reads");
        assert_eq!(info.name, "a");
        assert_eq!(info.version, "1.0.0");
        assert_eq!(
            info.dependencies,
            [
                ("b".to_string(), "2.0.0".to_string()),
                ("c".into(), "3.0.0".into()),
                ("d".into(), String::new())
            ]
        );
        assert_eq!(info.subcharts, ["b", "c"]);
    }

    #[test]
    fn a_bad_archive_or_chart_yaml_is_named() {
        let e = read_tgz_chart("x.tgz", b"not gzip").expect_err("fails");
        assert!(e.contains("x.tgz") && e.contains("gzip"), "{e}");
        let no_chart = tgz(&[("a/values.yaml", b"a: 1\n")]);
        let e = read_tgz_chart("x.tgz", &no_chart).expect_err("fails");
        assert!(e.contains("Chart.yaml"), "{e}");
        let e = parse_chart_yaml("C", "name: a\n").expect_err("fails");
        assert!(e.contains("version"), "{e}");
        let e =
            parse_chart_yaml("C", "name: a\nversion: 1\ndependencies: {}\n").expect_err("fails");
        assert!(e.contains("dependencies"), "{e}");
    }

    #[test]
    fn a_packaged_chart_with_long_paths_is_read() {
        let long = format!("top/{}/x.yaml", "d".repeat(120));
        let archive = tgz(&[
            ("top/Chart.yaml", b"name: top\nversion: 1.0.0\n"),
            (&long, b"a: 1\n"),
        ]);
        let info = read_tgz_chart("top.tgz", &archive).expect("reads");
        assert_eq!(info.name, "top");
        let e = read_tgz_chart("cut.tgz", &archive[..archive.len() / 2]).expect_err("fails");
        assert!(e.contains("cut.tgz"), "{e}");
    }
}
