//! render and validate: offline, no cluster is contacted.

use std::collections::BTreeMap;

use super::load_spec;
use crate::cli::{RenderArgs, ValidateArgs};
use crate::error::Result;
use crate::output::{OutputFormat, print_objects, print_value};
use crate::plan::{self, Catalog, Target};
use crate::render::{self, KubeInfo};

pub async fn render(args: &RenderArgs) -> Result<()> {
    let spec = load_spec(&args.input)?;
    let catalog = Catalog::builtin()?;
    let plan = plan::plan(&spec, &catalog)?;
    if args.plan {
        return print_value(
            &plan,
            if args.output == OutputFormat::Json {
                OutputFormat::Json
            } else {
                OutputFormat::Yaml
            },
        );
    }
    let opts = render::options(&args.charts)?;
    let info = KubeInfo {
        version: Some(args.kube_version.clone()),
        api_versions: Vec::new(),
    };
    let kube: BTreeMap<Target, KubeInfo> = plan
        .stages
        .iter()
        .map(|s| (s.target, info.clone()))
        .collect();
    let rendered = render::render_plan(&spec, &plan, &opts, &kube).await?;
    let objects: Vec<serde_json::Value> = rendered
        .iter()
        .flat_map(|(_, ms)| ms.iter().map(|m| render::redacted(&m.object)))
        .collect();
    print_objects(&objects, args.output)
}

pub fn validate(args: &ValidateArgs) -> Result<()> {
    let spec = load_spec(&args.input)?;
    match args.output {
        Some(f @ (OutputFormat::Json | OutputFormat::Yaml)) => print_value(&spec, f),
        _ => {
            println!(
                "{}: valid {} {}",
                args.input.filename.display(),
                crate::registry::kind_of(&spec),
                spec.name
            );
            Ok(())
        }
    }
}
