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
            fence: self.locks.id(),
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

/// Reads a spec from a file or stdin ("-") and validates it; a kubeconfig
/// that runs commands or reads local files is refused unless allowed.
pub fn load_spec(input: &SpecInput) -> Result<ClusterSpec> {
    let (label, text) = read_input(&input.filename)?;
    let spec = crate::spec::parse(&label, &text, input.name.as_deref())?;
    spec.refuse_local_access(&label, input.allow_exec_kubeconfig)?;
    Ok(spec)
}

fn read_input(path: &Path) -> Result<(String, String)> {
    // at most one byte more than a spec may have: a larger input is refused
    // without being read to its end
    let limit = crate::spec::MAX_SPEC_BYTES as u64 + 1;
    let (label, shown) = if path.as_os_str() == "-" {
        ("-".to_owned(), "<stdin>".to_owned())
    } else {
        (path.display().to_string(), path.display().to_string())
    };
    let mut bytes = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    read.map_err(|e| Error::invalid(format!("{shown}: cannot read: {e}")))?;
    if bytes.len() > crate::spec::MAX_SPEC_BYTES {
        return Err(crate::spec::too_large(&label).into());
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::invalid(format!(
            "{shown}: is not UTF-8 text; valid: a YAML or JSON document"
        ))
    })?;
    Ok((label, text))
}
