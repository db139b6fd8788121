//! The error type of the plugin and the exit code each kind of failure maps to.
//!
//! Every variant carries enough context to be shown to a user as one line;
//! none of them may carry a secret (token, kubeconfig, key).

use std::fmt;

/// Exit codes, documented in the README. Stable: scripts depend on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// An unexpected failure (a bug, or an I/O error on this machine).
    Internal = 1,
    /// Invalid input: a bad spec, flag or argument. Nothing was changed.
    Invalid = 2,
    /// Refused by a rule: host still in use, applications still deployed,
    /// a registration owned by someone else, a lock held. Nothing was changed.
    Refused = 3,
    /// A permission needed in a cluster is missing. Nothing was changed.
    Forbidden = 4,
    /// A cluster could not be reached or did not accept the credential.
    Unreachable = 5,
    /// Objects did not become ready (or gone) within --timeout.
    Timeout = 6,
    /// The API server rejected an apply or delete, or a field conflict.
    ApiFailed = 7,
    /// A tool or chart that is needed is missing (helm, a chart in --charts-dir).
    Missing = 8,
    /// Interrupted by a signal.
    Interrupted = 130,
}

impl ExitCode {
    /// The exit code of a number, as [`ExitCode`] gives them.
    pub fn from_code(n: u8) -> Option<Self> {
        [
            Self::Ok,
            Self::Internal,
            Self::Invalid,
            Self::Refused,
            Self::Forbidden,
            Self::Unreachable,
            Self::Timeout,
            Self::ApiFailed,
            Self::Missing,
            Self::Interrupted,
        ]
        .into_iter()
        .find(|c| *c as u8 == n)
    }
}

/// The plugin's error: a kind (which decides the exit code) and a message.
#[derive(Debug)]
pub struct Error {
    pub code: ExitCode,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ExitCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ExitCode::Invalid, message)
    }
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(ExitCode::Refused, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ExitCode::Internal, message)
    }
    pub fn missing(message: impl Into<String>) -> Self {
        Self::new(ExitCode::Missing, message)
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ExitCode::Timeout, message)
    }
    pub fn api(message: impl Into<String>) -> Self {
        Self::new(ExitCode::ApiFailed, message)
    }
    /// Adds context in front of the message, keeping the kind.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::internal(e.to_string())
    }
}

impl From<crate::spec::SpecErrors> for Error {
    fn from(e: crate::spec::SpecErrors) -> Self {
        // SpecErrors' Display already prints one `error: file:line:col: ...`
        // line per problem; strip the first prefix since main adds it.
        let text = e.to_string();
        let text = text.strip_prefix("error: ").unwrap_or(&text).to_string();
        Error::invalid(text)
    }
}

/// Classifies a kube client error for one cluster into a user-facing error.
/// The cluster's role ("management cluster", "runtime cluster cluster-a") is
/// named so a user knows which credential to look at.
pub fn from_kube(cluster: &str, e: kube::Error) -> Error {
    use kube::Error as K;
    // exec credential plugins: kube's own messages carry the command, its
    // environment and its output (where credentials are printed); never show them
    if let Some(msg) = auth_message(&e) {
        return Error::new(ExitCode::Unreachable, format!("{cluster}: {msg}"));
    }
    if is_tls_failure(&e) {
        return Error::new(
            ExitCode::Unreachable,
            format!("{cluster}: TLS failed: {}", tls_reason(&e)),
        );
    }
    if let Some(why) = crate::k8s::fence::fenced_out_of(&e) {
        return Error::refused(why);
    }
    match e {
        K::Api(s) if s.reason == crate::registry::LOCK_LOST => Error::refused(s.message.clone()),
        K::Api(s) if s.reason == crate::registry::LOCK_UNCONFIRMED => {
            Error::new(ExitCode::Unreachable, s.message.clone())
        }
        K::Api(s) => {
            let code = match s.code {
                401 => ExitCode::Unreachable,
                403 => ExitCode::Forbidden,
                _ => ExitCode::ApiFailed,
            };
            let what = if s.code == 401 {
                "the credential was not accepted (401 Unauthorized)".to_string()
            } else if let Some(w) = webhook_failure(&s.message) {
                w
            } else {
                format!("{} ({})", s.message, s.code)
            };
            Error::new(code, format!("{cluster}: {what}"))
        }
        K::HyperError(h) => Error::new(
            ExitCode::Unreachable,
            format!("{cluster}: cannot reach the API server: {}", root_cause(&h)),
        ),
        K::Service(s) => Error::new(
            ExitCode::Unreachable,
            format!(
                "{cluster}: cannot reach the API server: {}",
                root_cause(&*s)
            ),
        ),
        K::InferConfig(c) => Error::new(
            ExitCode::Unreachable,
            format!("{cluster}: cannot load the kubeconfig: {}", root_cause(&c)),
        ),
        other => Error::new(
            ExitCode::Unreachable,
            format!("{cluster}: {}", root_cause(&other)),
        ),
    }
}

/// A safe message for an authentication failure anywhere in an error chain.
pub fn auth_message(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use kube::client::AuthError as A;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(a) = err.downcast_ref::<A>() {
            return Some(match a {
                // its output is never shown: plugins print tokens, and some
                // print them in their error messages
                A::AuthExecRun { out, .. } => format!(
                    "cannot authenticate: the exec credential plugin failed ({}); its output is not shown, as it may hold credentials: run the kubeconfig's users[].user.exec command yourself to see why",
                    out.status
                ),
                A::AuthExecStart(io) => format!("cannot start the exec credential plugin: {io}"),
                A::AuthExecParse(_) => {
                    "the exec credential plugin did not print an ExecCredential".into()
                }
                A::AuthExec(_) | A::ExecPluginFailed => "the exec credential plugin failed".into(),
                other => format!("cannot authenticate: {other}"),
            });
        }
        cur = err.source();
    }
    None
}

fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        out.push_str(&err.to_string());
        out.push('\n');
        cur = err.source();
    }
    out
}

/// Whether an error chain is a TLS certificate failure (never retried).
pub fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let t = chain_text(e);
    t.contains("invalid peer certificate")
        || t.contains("UnknownIssuer")
        || t.contains("certificate verify")
        || t.contains("InvalidCertificate")
}

fn tls_reason(e: &(dyn std::error::Error + 'static)) -> String {
    let t = chain_text(e);
    t.lines()
        .find(|l| l.contains("certificate"))
        .unwrap_or("the server's certificate was not accepted")
        .trim()
        .to_string()
}

/// The innermost message of an error chain, joined with its parents in a
/// short form: "connection refused" rather than five layers of wrappers.
///
/// A YAML parser's error anywhere in the chain (a kubeconfig that cannot be
/// read) is never shown: it quotes the text around the error, which can be
/// a token. Only its position is kept.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    if let Some(message) = yaml_parse_error(e) {
        return message;
    }
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
        cur = s.source();
    }
    // the last one is the most specific; keep the last two at most
    let n = parts.len();
    if n >= 2 {
        format!("{}: {}", parts[n - 2], parts[n - 1])
    } else {
        parts.pop().unwrap_or_default()
    }
}

/// A fixed message, with the position only, when an error chain holds a YAML
/// parser's error (kube's kubeconfig parser quotes up to 64 characters
/// around the error).
fn yaml_parse_error(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let parse = match err.downcast_ref::<kube::config::KubeconfigError>() {
            Some(kube::config::KubeconfigError::Parse(p)) => Some(&**p),
            _ => err.downcast_ref::<serde_saphyr::Error>(),
        };
        if let Some(p) = parse {
            let at = p
                .location()
                .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
                .unwrap_or_default();
            return Some(format!(
                "the kubeconfig does not match the kubeconfig schema{at} (the parser's message is not shown: it may quote a secret)"
            ));
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod yaml_error_tests {
    use super::root_cause;

    #[test]
    fn a_kubeconfig_parse_error_never_shows_the_text_around_it() {
        let text = "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: CANARY-TOKEN-0123456789\n    exec: {command: x, args: \"--oops\"}\n";
        let Err(e) = kube::config::Kubeconfig::from_yaml(text) else {
            panic!("expected a parse error");
        };
        // what kube itself would print
        assert!(
            format!("{e}").contains("CANARY") || format!("{e}").contains("oops"),
            "kube's message no longer quotes the text; this test needs a new case: {e}"
        );
        let shown = root_cause(&e);
        assert!(
            !shown.contains("CANARY") && !shown.contains("oops"),
            "{shown}"
        );
        assert!(
            shown.starts_with("the kubeconfig does not match the kubeconfig schema at line 7"),
            "{shown}"
        );
    }
}

/// An admission webhook that refused a request or could not be called, in
/// one line: which webhook, which Service serves it, and the way out.
/// None when the message is not about a webhook.
pub fn webhook_failure(message: &str) -> Option<String> {
    let quoted = |after: &str| -> Option<String> {
        let rest = message.split_once(after)?.1;
        let rest = rest.strip_prefix('"')?;
        Some(rest.split_once('"')?.0.to_string())
    };
    let short = |reason: &str| -> String {
        // x509 errors list every name of the certificate: the first clause says it
        let reason = reason
            .split_once(": x509: certificate is valid for")
            .map_or(reason, |(head, _)| head);
        let mut out: String = reason.trim().chars().take(160).collect();
        if reason.trim().chars().count() > 160 {
            out.push_str("...");
        }
        out
    };
    if let Some(name) = quoted("failed calling webhook ") {
        // `Post "https://<service>.<namespace>.svc:443/path?timeout=10s": reason`
        let url = message
            .split_once("Post \"")
            .and_then(|(_, r)| r.split_once('"'))
            .map(|(u, _)| u.to_string());
        let reason = message
            .split_once("Post \"")
            .and_then(|(_, r)| r.split_once("\": "))
            .map(|(_, reason)| reason.to_string())
            .unwrap_or_else(|| message.to_string());
        let service = url.as_deref().and_then(|u| {
            let host = u.strip_prefix("https://")?.split(['/', ':']).next()?;
            let mut parts = host.split('.');
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        });
        let (served_by, way_out) = match service {
            Some((svc, ns)) => (
                format!(" (Service {ns}/{svc})"),
                format!(
                    "make the Service's Pods ready (kubectl -n {ns} get pods,endpoints {svc}); if its component is broken, delete the webhook configuration that holds {name:?}"
                ),
            ),
            None => (
                String::new(),
                format!(
                    "make what serves it ready; if its component is broken, delete the webhook configuration that holds {name:?}"
                ),
            ),
        };
        return Some(format!(
            "admission webhook {name:?}{served_by} could not be called: {}; the API server refuses the change until it answers: {way_out}",
            short(&reason)
        ));
    }
    if let Some(name) = quoted("admission webhook ")
        && let Some((_, reason)) = message.split_once("denied the request: ")
    {
        return Some(format!(
            "admission webhook {name:?} denied the change: {}",
            short(reason)
        ));
    }
    None
}

#[cfg(test)]
mod webhook_tests {
    use super::webhook_failure;

    #[test]
    fn a_webhook_that_cannot_be_called_is_one_line_with_its_service_and_the_way_out() {
        let m = "Internal error occurred: failed calling webhook \"namespaces.hnc.x-k8s.io\": failed to call webhook: Post \"https://hnc-webhook-service.hnc-system.svc:443/validate-v1-namespace?timeout=10s\": tls: failed to verify certificate: x509: certificate is valid for a.example, b.example, not hnc-webhook-service.hnc-system.svc";
        let got = webhook_failure(m).expect("a webhook failure");
        assert_eq!(
            got,
            "admission webhook \"namespaces.hnc.x-k8s.io\" (Service hnc-system/hnc-webhook-service) could not be called: tls: failed to verify certificate; the API server refuses the change until it answers: make the Service's Pods ready (kubectl -n hnc-system get pods,endpoints hnc-webhook-service); if its component is broken, delete the webhook configuration that holds \"namespaces.hnc.x-k8s.io\""
        );
        assert!(!got.contains('\n'));
    }

    #[test]
    fn a_webhook_that_denies_is_named() {
        let m =
            "admission webhook \"validate.example.io\" denied the request: field x is not allowed";
        assert_eq!(
            webhook_failure(m).as_deref(),
            Some(
                "admission webhook \"validate.example.io\" denied the change: field x is not allowed"
            )
        );
        assert_eq!(webhook_failure("the object has been modified"), None);
    }
}
