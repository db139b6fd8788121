//! libFuzzer target: `kubectl_nautes::spec::parse` on arbitrary bytes (as
//! the binary reads a file: UTF-8 required, here decoded lossily so that
//! every input reaches the parser), with and without a name on the command
//! line. Any panic, abort or stack overflow is a bug; so is an input that
//! takes seconds (run with -timeout=1).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let name = if data.first().is_some_and(|b| b & 1 == 1) {
        Some("from-the-command-line")
    } else {
        None
    };
    let _ = kubectl_nautes::spec::parse("fuzz.yaml", &text, name);
});
