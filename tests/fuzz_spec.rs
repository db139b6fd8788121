//! A bounded-time mutation fuzz test of the spec parser
//! (`kubectl_nautes::spec::parse`), on stable Rust with no extra dependency.
//!
//! It is NOT coverage-guided: it cannot see which branches an input reaches,
//! because coverage feedback needs compiler instrumentation (libFuzzer's
//! sanitizer coverage), which cargo-fuzz gets from a nightly toolchain. The
//! coverage-guided target lives in `fuzz/` (`cargo +nightly fuzz run
//! spec_parse`); this test is what runs everywhere with `cargo test`. The only
//! feedback it uses is cheap: an input whose first error message is new is
//! kept as a seed, so mutations spread over the validator's messages.
//!
//! Seeds: examples/*.yaml and tests/specs/invalid/*.{yaml,json}, plus
//! handwritten hard cases (deep nesting, huge numbers, alias bombs, invalid
//! UTF-8, a kubeconfig nested as a string and as base64). Mutations: byte
//! flips, insertions of random bytes and of YAML/JSON syntax, deletions,
//! duplications, splices of two seeds, number replacement by huge values,
//! wrapping in deep nesting; bytes that are not UTF-8 are replaced lossily
//! (as the binary would reject them before parsing).
//!
//! Each case runs inside `catch_unwind` on a worker thread; the test fails on
//! a panic, or when one input has not finished after 30 s (a hang detector,
//! not a speed check: speed is measured by `make bench`), and writes that
//! input under target/fuzz-failures/. The work of a parse is bounded by
//! construction, not by a clock: the spec's size, the decoded kubeconfig's
//! size and the expansion of YAML aliases have limits, and the hard cases
//! below assert the exact error each limit gives.
//! Time budget: NAUTES_FUZZ_SECONDS (default 20).
//! Replay: NAUTES_FUZZ_SEED=<printed seed>.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kubectl_nautes::spec::parse;

/// splitmix64: deterministic from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// In 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Pieces of YAML and JSON syntax worth inserting.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ": ",
    ",",
    "- ",
    "-",
    "? ",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "!!str ",
    "!!binary ",
    "!!int ",
    "!!map ",
    "!custom ",
    "<<: *a\n",
    "<<: ",
    "\t",
    "'",
    "\"",
    "\\",
    "\\u0000",
    "\\x",
    "\n",
    "\r\n",
    "\r",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "%TAG ! tag:x:\n",
    "#",
    "|",
    "|-\n",
    ">",
    ">+\n",
    "~",
    "null",
    "true",
    "yes",
    "on",
    "0x",
    "0o",
    "1e",
    ".inf",
    "-.inf",
    ".nan",
    "\u{feff}",
    "\u{0}",
    "\u{85}",
    "\u{2028}",
    "\u{1F600}",
    "é",
    "kubeconfig: ",
    "api_server: ",
    "apiServer: ",
    "name: ",
    "cluster_type: ",
    "usage: ",
    "spec:\n  ",
    "metadata:\n  ",
    "components:\n  ",
    "traefik:\n  http_node_port: ",
    "additions:\n    ",
    "https://",
    "http://[::1]:",
    "@",
    "%",
    "=",
    "  ",
    "    ",
];

/// Numbers that stress integer and float handling.
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "65535",
    "65536",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "170141183460469231731687303715884105727",
    "170141183460469231731687303715884105728",
    "340282366920938463463374607431768211456",
    "99999999999999999999999999999999999999999999999999999999999999999999",
    "1e308",
    "1e309",
    "-1e400",
    "4.9e-325",
    "0x7fffffffffffffffffffffff",
    "0o7777777777777777777777777777",
    "0b1111111111111111111111111111111111111111111111111111111111111111111",
    "1_000_000",
    "+.5",
    "1.",
    ".1e",
];

fn seeds() -> Vec<(String, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["examples", "tests/specs/invalid"] {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                )
            })
            .collect();
        paths.sort();
        for p in paths {
            let bytes = std::fs::read(&p).expect("read seed");
            out.push((p.display().to_string(), bytes));
        }
    }
    assert!(out.len() >= 30, "too few seeds found: {}", out.len());
    out
}

/// Handwritten hard cases, run once each before the random ones.
fn hard_cases(example: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, text: String| v.push((name.to_string(), text));
    for depth in [19, 20, 21, 100, 10_000, 100_000] {
        add(
            &format!("flow sequence nesting {depth}"),
            format!("name: {}{}", "[".repeat(depth), "]".repeat(depth)),
        );
        add(
            &format!("flow mapping nesting {depth}"),
            format!("name: {}{}", "{a: ".repeat(depth), "}".repeat(depth)),
        );
        add(
            &format!("JSON nesting {depth}"),
            format!("{{\"name\": {}1{}}}", "[".repeat(depth), "]".repeat(depth)),
        );
    }
    for depth in [21, 1_000, 5_000] {
        let mut s = String::new();
        for i in 0..depth {
            s.push_str(&" ".repeat(i));
            s.push_str("a:\n");
        }
        add(&format!("block nesting {depth}"), s);
        let mut s = String::new();
        for i in 0..depth {
            s.push_str(&"  ".repeat(i));
            s.push_str("- \n");
        }
        add(&format!("block sequence nesting {depth}"), s);
    }
    add("merge key loop", "a: &a {<<: *a}\nname: x\n".to_string());
    add("self alias", "a: &a [*a]\n".to_string());
    add("undefined alias", "name: *nope\n".to_string());
    for n in NUMBERS {
        for key in ["name", "api_server", "usage", "http_node_port"] {
            add(&format!("{key} = {n}"), format!("{key}: {n}\n"));
        }
        add(
            &format!("traefik port {n}"),
            example.replace("30080", n).replace("30443", n),
        );
    }
    add("empty", String::new());
    add("only NUL", "\u{0}".repeat(100));
    add("BOM", format!("\u{feff}{example}"));
    add("CRLF", example.replace('\n', "\r\n"));
    add("CR only", example.replace('\n', "\r"));
    add("tabs", example.replace("  ", "\t"));
    add("long key", format!("{}: 1\n", "k".repeat(1 << 16)));
    add(
        "many keys",
        // every key is an unknown field with a suggestion computed: linear,
        // but ~130 us per key in a debug build, so 20 000 keys take ~2.7 s
        // there (the parser's node budget stops at ~50 000)
        (0..5_000).map(|i| format!("k{i}: {i}\n")).collect(),
    );
    add(
        "many duplicate keys",
        (0..5_000).map(|_| "name: x\n".to_string()).collect(),
    );
    add("many documents", "---\na: 1\n".repeat(5_000));
    add("many errors", "x: [1, 2\n".repeat(2_000));
    add(
        "huge flow sequence",
        format!("name: [{}]\n", vec!["1"; 50_000].join(",")),
    );
    add(
        "kubeconfig as base64 of garbage",
        "name: x\napi_server: https://1.2.3.4\ncluster_type: physical\nusage: worker\nkubeconfig: QUJDRA==\n"
            .to_string(),
    );
    add(
        "invalid UTF-8, lossy",
        String::from_utf8_lossy(
            b"name: \xff\xfe\xc3\x28 \xed\xa0\x80\napi_server: https://\xf0\x28\x8c\xbc\n",
        )
        .into_owned(),
    );
    v
}

/// A physical worker spec whose kubeconfig is `kubeconfig` (already quoted
/// or indented as it must appear after `kubeconfig: `).
fn with_kubeconfig(kubeconfig: &str) -> String {
    format!(
        "name: x\napi_server: https://1.2.3.4:6443\ncluster_type: physical\nusage: worker\nkubeconfig: {kubeconfig}\n"
    )
}

/// Inputs that hit a limit, with the exact errors they give.
fn limit_cases(example: &str) -> Vec<(&'static str, String, String)> {
    let bomb = alias_bomb();
    let kubeconfig_line = "error: fuzz.yaml:5:13: kubeconfig:";
    vec![
        (
            "alias bomb",
            bomb.clone(),
            "error: fuzz.yaml:4:45: (document): expands YAML aliases to more than 10000 nodes \
             (or nests them deeper than 16), the limit; valid: aliases that expand to at most \
             10000 nodes in all"
                .to_owned(),
        ),
        (
            "alias bomb inside a kubeconfig string",
            with_kubeconfig(
                &serde_json::to_string(&format!("{bomb}clusters: *a11\nusers: *a11\n"))
                    .expect("json"),
            ),
            format!(
                "{kubeconfig_line} at line 4, column 45 of the kubeconfig text: expands YAML \
                 aliases to more than 10000 nodes (or nests them deeper than 16), the limit; \
                 valid: aliases that expand to at most 10000 nodes in all"
            ),
        ),
        (
            "kubeconfig as base64 of a nested bomb",
            with_kubeconfig(&base64(&format!(
                "{bomb}kind: Config\nclusters: *a11\nusers: *a11\n"
            ))),
            format!(
                "{kubeconfig_line} at line 4, column 45 of the base64-decoded kubeconfig: \
                 expands YAML aliases to more than 10000 nodes (or nests them deeper than 16), \
                 the limit; valid: aliases that expand to at most 10000 nodes in all"
            ),
        ),
        (
            "more aliases than the limit",
            format!("a: &a x\nb: [{}]\n", vec!["*a"; 101].join(", ")),
            "error: fuzz.yaml:2:405: (document): uses more than 100 YAML aliases (*name), the \
             limit; valid: at most 100"
                .to_owned(),
        ),
        (
            "a large string repeated through aliases",
            format!(
                "a: &a \"{}\"\nb: [{}]\n",
                "x".repeat(900 * 1024),
                vec!["*a"; 100].join(", ")
            ),
            "error: fuzz.yaml:2:9: (document): holds more than 2 MiB of text in its values (a \
             value repeated through aliases counts at each use), the limit; valid: at most 2 MiB"
                .to_owned(),
        ),
        (
            "spec one byte over the size limit",
            format!("{example}\n#{}", "x".repeat(1024 * 1024 - example.len())),
            "error: fuzz.yaml:1:1: (document): is larger than 1 MiB (1048576 bytes), the limit; \
             valid: a cluster spec of at most 1 MiB"
                .to_owned(),
        ),
        (
            "long line over the size limit",
            format!("name: {}\n", "a".repeat(1 << 20)),
            "error: fuzz.yaml:1:1: (document): is larger than 1 MiB (1048576 bytes), the limit; \
             valid: a cluster spec of at most 1 MiB"
                .to_owned(),
        ),
        (
            "kubeconfig text over its size limit",
            with_kubeconfig(
                &serde_json::to_string(&format!(
                    "kind: Config\nclusters: []\n#{}\n",
                    "x".repeat(256 * 1024)
                ))
                .expect("json"),
            ),
            format!(
                "{kubeconfig_line} is larger than 256 KiB, the limit; valid: a kubeconfig of at \
                 most 256 KiB"
            ),
        ),
        (
            "base64 kubeconfig over its size limit after decoding",
            with_kubeconfig(&base64(&format!(
                "kind: Config\nclusters: []\n#{}\n",
                "x".repeat(256 * 1024)
            ))),
            format!(
                "{kubeconfig_line} is larger than 256 KiB after base64 decoding, the limit; \
                 valid: a kubeconfig of at most 256 KiB"
            ),
        ),
    ]
}

/// A billion laughs: 10^12 nodes if its aliases were expanded.
fn alias_bomb() -> String {
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    bomb
}

fn base64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                out.push(A[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Largest input the random mutations grow to (the hard cases go further).
const MAX_LEN: usize = 256 * 1024;

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut d = input.to_vec();
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        let len = d.len();
        match rng.below(11) {
            // flip a bit
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            // a random byte
            1 => {
                let i = rng.below(len + 1);
                d.insert(i, (rng.next() & 0xff) as u8);
            }
            // a piece of syntax
            2 | 3 => {
                let i = rng.below(len + 1);
                let t = rng.pick(TOKENS).as_bytes();
                d.splice(i..i, t.iter().copied());
            }
            // delete a range
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                d.drain(i..i + n);
            }
            // duplicate a range
            5 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                let piece: Vec<u8> = d[i..i + n].to_vec();
                let at = rng.below(d.len() + 1);
                d.splice(at..at, piece);
            }
            // splice with another seed
            6 => {
                let other = rng.pick(corpus);
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let n = 1 + rng.below((other.len() - from).min(512));
                    let at = rng.below(len + 1);
                    let cut = (at + rng.below(64)).min(len);
                    d.splice(at..cut, other[from..from + n].iter().copied());
                }
            }
            // replace a run of digits by a huge or odd number
            7 => {
                if let Some(start) = (0..len)
                    .map(|k| (k + rng.below(len.max(1))) % len.max(1))
                    .find(|&k| d.get(k).is_some_and(u8::is_ascii_digit))
                {
                    let mut end = start;
                    while end < d.len() && d[end].is_ascii_digit() {
                        end += 1;
                    }
                    let n = rng.pick(NUMBERS).as_bytes();
                    d.splice(start..end, n.iter().copied());
                }
            }
            // wrap a line's value in nesting
            8 => {
                let depth = 1 + rng.below(40);
                let (open, close) = if rng.chance(2) {
                    ("[", "]")
                } else {
                    ("{k: ", "}")
                };
                let i = rng.below(len + 1);
                let j = (i + rng.below(32)).min(len);
                let mut piece = open.repeat(depth).into_bytes();
                piece.extend_from_slice(&d[i..j]);
                piece.extend(close.repeat(depth).into_bytes());
                d.splice(i..j, piece);
            }
            // swap two lines (indentation and order problems)
            9 => {
                let mut lines: Vec<Vec<u8>> =
                    d.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                if lines.len() > 1 {
                    let a = rng.below(lines.len());
                    let b = rng.below(lines.len());
                    lines.swap(a, b);
                    d = lines.join(&b'\n');
                }
            }
            // change the indentation of a line
            _ => {
                let starts: Vec<usize> = std::iter::once(0)
                    .chain(
                        d.iter()
                            .enumerate()
                            .filter(|(_, b)| **b == b'\n')
                            .map(|(k, _)| k + 1),
                    )
                    .filter(|k| *k <= d.len())
                    .collect();
                let at = *rng.pick(&starts);
                if rng.chance(2) && d.get(at) == Some(&b' ') {
                    d.remove(at);
                } else {
                    let n = 1 + rng.below(4);
                    d.splice(at..at, std::iter::repeat_n(b' ', n));
                }
            }
        }
        if d.len() > MAX_LEN {
            d.truncate(MAX_LEN);
        }
    }
    d
}

/// How a case ended: its errors (None when the spec is valid) as the first
/// one's "path: message" and all of them as printed, or the panic's message.
type Outcome = Result<Option<(String, String)>, String>;

/// Runs one case, catching a panic.
fn run_case(text: &str, name_arg: Option<&str>) -> Outcome {
    let r = catch_unwind(AssertUnwindSafe(|| parse("fuzz.yaml", text, name_arg)));
    match r {
        Err(p) => Err(p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into())),
        Ok(Ok(_)) => Ok(None),
        Ok(Err(e)) => Ok(Some((
            e.errors
                .first()
                .map(|x| format!("{}: {}", x.path, x.message))
                .unwrap_or_default(),
            e.to_string(),
        ))),
    }
}

/// A hang detector, not a speed check: an input still running after this
/// long is a hang (a debug build on a loaded machine takes well under 1 s).
const HANG_AFTER: Duration = Duration::from_secs(30);

/// Parses on a worker thread so that a hang is reported instead of
/// blocking the test forever.
struct Worker {
    send: mpsc::Sender<(String, Option<&'static str>)>,
    recv: mpsc::Receiver<(Outcome, Duration)>,
}

impl Worker {
    fn start() -> Self {
        let (send, inputs) = mpsc::channel::<(String, Option<&'static str>)>();
        let (results, recv) = mpsc::channel();
        std::thread::spawn(move || {
            for (text, name_arg) in inputs {
                let began = Instant::now();
                let outcome = run_case(&text, name_arg);
                if results.send((outcome, began.elapsed())).is_err() {
                    break;
                }
            }
        });
        Worker { send, recv }
    }

    /// The outcome and wall time, or None after [`HANG_AFTER`].
    fn run(&self, text: &str, name_arg: Option<&'static str>) -> Option<(Outcome, Duration)> {
        self.send.send((text.to_owned(), name_arg)).ok()?;
        self.recv.recv_timeout(HANG_AFTER).ok()
    }
}

#[derive(Default)]
struct Stats {
    executions: u64,
    valid: u64,
    seen_messages: std::collections::BTreeSet<String>,
    /// The slowest case, for information only (never a pass/fail criterion).
    slowest: (Duration, String),
    failures: Vec<String>,
    /// Set after a hang: the worker is stuck, nothing more can run.
    hung: bool,
}

impl Stats {
    /// Runs one case; its errors as printed (None when valid or on a
    /// failure) and whether its first error was not seen before.
    fn check(
        &mut self,
        worker: &Worker,
        label: &str,
        text: &str,
        name_arg: Option<&'static str>,
    ) -> (Option<String>, bool) {
        self.executions += 1;
        match worker.run(text, name_arg) {
            None => {
                let path = save_failure(text);
                self.failures.push(format!(
                    "{label}: parse still running after {HANG_AFTER:?} (a hang); input in {}",
                    path.display()
                ));
                self.hung = true;
                (None, false)
            }
            Some((Err(panic), _)) => {
                let path = save_failure(text);
                self.failures.push(format!(
                    "{label}: parse panicked ({panic}); input in {}",
                    path.display()
                ));
                (None, false)
            }
            Some((Ok(msg), took)) => {
                if took > self.slowest.0 {
                    self.slowest = (took, label.to_string());
                }
                match msg {
                    None => {
                        self.valid += 1;
                        (None, false)
                    }
                    Some((first, all)) => {
                        let short: String = first.chars().take(80).collect();
                        let new = self.seen_messages.insert(short);
                        (Some(all), new)
                    }
                }
            }
        }
    }
}

fn save_failure(text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    let path = dir.join(format!("spec-{h:016x}.yaml"));
    let _ = std::fs::write(&path, text);
    path
}

#[test]
fn spec_parse_never_panics_or_hangs_on_mutated_specs() {
    let seconds: u64 = std::env::var("NAUTES_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("NAUTES_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("NAUTES_FUZZ_SEED={seed} NAUTES_FUZZ_SECONDS={seconds}");
    let seeds = seeds();
    let example = String::from_utf8_lossy(&seeds[0].1).into_owned();
    let mut corpus: Vec<Vec<u8>> = seeds.iter().map(|(_, b)| b.clone()).collect();
    let mut st = Stats::default();
    let worker = Worker::start();
    for (label, text) in hard_cases(&example) {
        st.check(&worker, &label, &text, None);
    }
    // the limits that bound the work, each with its exact error
    for (label, text, expected) in limit_cases(&example) {
        if st.hung {
            break;
        }
        let (got, _) = st.check(&worker, label, &text, None);
        match got {
            Some(got) if got == expected => {}
            Some(got) => st.failures.push(format!(
                "{label}: expected the error\n{expected}\ngot\n{got}"
            )),
            None if st.hung => {}
            None => st.failures.push(format!(
                "{label}: expected the error\n{expected}\nbut it parsed"
            )),
        }
    }
    let hard = st.executions;
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline && st.failures.len() < 5 && !st.hung {
        let base = corpus[rng.below(corpus.len())].clone();
        let bytes = mutate(&mut rng, &base, &corpus);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let name_arg = if rng.chance(4) {
            Some("from-the-command-line")
        } else {
            None
        };
        if st.check(&worker, "mutation", &text, name_arg).1 && corpus.len() < 2_000 {
            corpus.push(text.into_bytes());
        }
    }
    let Stats {
        executions,
        valid,
        seen_messages,
        slowest,
        failures,
        ..
    } = st;
    eprintln!(
        "{executions} executions ({hard} hard cases, {} random) in {seconds}s budget; {valid} valid specs, \
         {} distinct first errors, corpus {} inputs; slowest {:?} ({}; information only)",
        executions - hard,
        seen_messages.len(),
        corpus.len(),
        slowest.0,
        slowest.1
    );
    assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n"));
}
