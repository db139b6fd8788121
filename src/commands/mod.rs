//! One module per subcommand, plus what they share: the command's context
//! (flags, progress, held locks) and loading a spec.

pub mod destroy;
pub mod info;
pub mod offline;
pub mod register;

use std::io::Read;
use std::path::Path;

use crate::cli::{Global, SpecInput};
use crate::error::{Error, Result};
use crate::k8s::{Cluster, ConnectOptions};
use crate::output::Progress;
use crate::registry::Registry;
use crate::spec::ClusterSpec;

/// What every command gets.
pub struct Ctx {
    pub global: Global,
    pub progress: Progress,
    /// The locks the command holds, released when it is interrupted.
    pub locks: crate::registry::Locks,
}

impl Ctx {
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            insecure_skip_tls_verify: self.global.insecure_skip_tls_verify,
            request_timeout: self.global.request_timeout,
        }
    }

    pub async fn management(&self) -> Result<Cluster> {
        Cluster::management(
            self.global.kubeconfig.as_deref(),
            self.global.context.as_deref(),
            self.connect_options(),
        )
        .await
    }

    pub async fn registry(&self) -> Result<Registry> {
        let m = self.management().await?;
        // one request without retries: an unreachable management cluster
        // fails at once
        m.version().await?;
        Ok(Registry::new(m, &self.global.registry_namespace))
    }
}

/// Reads a spec from a file or stdin ("-") and validates it.
pub fn load_spec(input: &SpecInput) -> Result<ClusterSpec> {
    let (label, text) = read_input(&input.filename)?;
    Ok(crate::spec::parse(&label, &text, input.name.as_deref())?)
}

fn read_input(path: &Path) -> Result<(String, String)> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::invalid(format!("<stdin>: cannot read: {e}")))?;
        return Ok(("-".into(), text));
    }
    let label = path.display().to_string();
    let bytes =
        std::fs::read(path).map_err(|e| Error::invalid(format!("{label}: cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::invalid(format!(
            "{label}: is not UTF-8 text; valid: a YAML or JSON document"
        ))
    })?;
    Ok((label, text))
}
