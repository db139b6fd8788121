//! Output: progress on stderr (plain timestamped lines, or a JSON event
//! stream), results on stdout as a table, YAML or JSON.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use serde_json::json;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Plain lines on a terminal with colour, plain lines otherwise.
    Auto,
    /// Plain timestamped lines.
    Plain,
    /// One JSON object per line.
    Json,
    /// Nothing.
    None,
}

/// The format of results on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Yaml,
    Json,
    Name,
}

pub struct Progress {
    mode: ProgressMode,
    color: bool,
    start: Instant,
    verbosity: u8,
    lock: Mutex<()>,
    /// On a terminal: a status line redrawn under the log lines.
    live: Option<Arc<Live>>,
    ticker: Option<std::thread::JoinHandle<()>>,
    /// Receives every event as the JSON object `--progress=json` prints.
    sink: Option<Box<dyn Fn(serde_json::Value) + Send + Sync>>,
}

/// The live status line: a spinner, the elapsed time, the current step and
/// its counts (objects applied, workloads ready).
struct Live {
    status: Mutex<String>,
    stop: AtomicBool,
    start: Instant,
    frame: AtomicUsize,
}

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

impl Live {
    fn draw(&self, err: &mut dyn Write) {
        let status = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        if status.is_empty() {
            return;
        }
        let f = self.frame.fetch_add(1, Ordering::Relaxed) % SPINNER.len();
        let _ = write!(
            err,
            "\r\x1b[2K\x1b[36m{}\x1b[0m {:5.1}s {status}",
            SPINNER[f],
            self.start.elapsed().as_secs_f64()
        );
        let _ = err.flush();
    }
}

impl Progress {
    pub fn new(mode: ProgressMode, verbosity: u8) -> Self {
        let tty = std::io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let start = Instant::now();
        let (live, ticker) = if tty
            && mode == ProgressMode::Auto
            && std::env::var_os("TERM").is_some_and(|t| t != "dumb")
        {
            let live = Arc::new(Live {
                status: Mutex::new(String::new()),
                stop: AtomicBool::new(false),
                start,
                frame: AtomicUsize::new(0),
            });
            let l = live.clone();
            let ticker = std::thread::spawn(move || {
                while !l.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(120));
                    l.draw(&mut std::io::stderr().lock());
                }
            });
            (Some(live), Some(ticker))
        } else {
            (None, None)
        };
        Self {
            mode,
            color: tty && !no_color && mode == ProgressMode::Auto,
            start,
            verbosity,
            lock: Mutex::new(()),
            live,
            ticker,
            sink: None,
        }
    }

    /// Progress that hands every event, as `--progress=json` prints it, to
    /// `sink` instead of printing it (the HTTP server streams them).
    pub fn to_sink(
        verbosity: u8,
        sink: impl Fn(serde_json::Value) + Send + Sync + 'static,
    ) -> Self {
        let mut p = Self::new(ProgressMode::None, verbosity);
        p.sink = Some(Box::new(sink));
        p
    }

    /// Sets the live status line (a terminal only; elsewhere a no-op).
    pub fn status(&self, text: impl Into<String>) {
        if let Some(l) = &self.live
            && let Ok(mut s) = l.status.lock()
        {
            *s = text.into();
        }
    }

    pub fn quiet() -> Self {
        Self::new(ProgressMode::None, 0)
    }

    fn emit(&self, level: &str, step: &str, message: &str) {
        let _guard = self.lock.lock();
        let elapsed = self.start.elapsed().as_secs_f64();
        if let Some(sink) = &self.sink {
            sink(
                json!({"time": crate::registry::now(), "elapsed": (elapsed * 1000.0).round() / 1000.0, "level": level, "step": step, "message": message}),
            );
            return;
        }
        let mut err = std::io::stderr().lock();
        match self.mode {
            ProgressMode::None => {}
            ProgressMode::Json => {
                let line = json!({"time": crate::registry::now(), "elapsed": (elapsed * 1000.0).round() / 1000.0, "level": level, "step": step, "message": message});
                let _ = writeln!(err, "{line}");
            }
            ProgressMode::Plain | ProgressMode::Auto => {
                if self.live.is_some() {
                    let _ = write!(err, "\r\x1b[2K");
                }
                let mark = match level {
                    "done" => "✓",
                    "warn" => "!",
                    "change" => "~",
                    "debug" => "·",
                    _ => "•",
                };
                if self.color {
                    let c = match level {
                        "done" => "32",
                        "warn" => "33",
                        "change" => "36",
                        "debug" => "90",
                        _ => "1",
                    };
                    let _ = writeln!(
                        err,
                        "\x1b[90m[{elapsed:6.1}s]\x1b[0m \x1b[{c}m{mark}\x1b[0m {step}: {message}"
                    );
                } else {
                    let _ = writeln!(err, "[{elapsed:6.1}s] {mark} {step}: {message}");
                }
                if let Some(l) = &self.live {
                    l.draw(&mut err);
                }
            }
        }
    }

    /// A step starts or progresses.
    pub fn info(&self, step: &str, message: impl AsRef<str>) {
        self.emit("info", step, message.as_ref());
    }
    /// A step finished.
    pub fn done(&self, step: &str, message: impl AsRef<str>) {
        self.emit("done", step, message.as_ref());
    }
    /// Something changed in a cluster.
    pub fn change(&self, step: &str, message: impl AsRef<str>) {
        self.emit("change", step, message.as_ref());
    }
    pub fn warn(&self, step: &str, message: impl AsRef<str>) {
        self.emit("warn", step, message.as_ref());
    }
    /// Shown with -v.
    pub fn debug(&self, step: &str, message: impl AsRef<str>) {
        if self.verbosity > 0 {
            self.emit("debug", step, message.as_ref());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(l) = &self.live {
            l.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.ticker.take() {
                let _ = t.join();
            }
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

/// Prints a serializable value on stdout as YAML or JSON.
pub fn print_value<T: Serialize>(value: &T, format: OutputFormat) -> crate::error::Result<()> {
    let text = match format {
        OutputFormat::Json => {
            let mut s = serde_json::to_string_pretty(value)
                .map_err(|e| crate::error::Error::internal(e.to_string()))?;
            s.push('\n');
            s
        }
        _ => serde_saphyr::to_string(value)
            .map_err(|e| crate::error::Error::internal(e.to_string()))?,
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    Ok(())
}

/// Prints rendered objects on stdout: a YAML stream, or with `-o json` a
/// `kind: List`.
pub fn print_objects(
    objects: &[serde_json::Value],
    format: OutputFormat,
) -> crate::error::Result<()> {
    match format {
        OutputFormat::Json => print_value(
            &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects}),
            OutputFormat::Json,
        ),
        _ => {
            let mut out = String::new();
            for o in objects {
                out.push_str("---\n");
                out.push_str(
                    &serde_saphyr::to_string(o)
                        .map_err(|e| crate::error::Error::internal(e.to_string()))?,
                );
            }
            print!("{out}");
            Ok(())
        }
    }
}

/// Prints rows as an aligned table with a header, like kubectl get.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    let _ = writeln!(
        out,
        "{}",
        line(header.iter().map(|h| h.to_string()).collect())
    );
    for r in rows {
        let _ = writeln!(out, "{}", line(r.clone()));
    }
}

/// "5s", "3m", "2h", "4d" as kubectl shows ages.
pub fn age(since_rfc3339: &str) -> String {
    let Ok(t) = since_rfc3339.parse::<k8s_openapi::jiff::Timestamp>() else {
        return "<unknown>".into();
    };
    let secs = (k8s_openapi::jiff::Timestamp::now().as_second() - t.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
