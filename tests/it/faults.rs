//! Fault and reliability tests against the real test bed: an API server
//! stopped in the middle of a register, SIGKILL inside each phase of
//! register and destroy, two runs racing for the same cluster's lock, bad
//! credentials and unreachable clusters, and secrets that must never reach
//! stdout, stderr or a temporary file (also after a SIGINT).
//!
//! Every test starts its own clusters. Random choices come from a seed that
//! is printed (`NAUTES_FAULTS_SEED=<n>` replays a run).
//!
//! Where a test makes a killed run's Lease expire early (by moving its
//! renewTime into the past and its duration to 1 s instead of waiting
//! ~25 s, see `expire_lease`), it says so: expiry by the clock itself is
//! tested in `the_lock_serializes_runs_and_a_killed_runs_lock_expires` and
//! once among the kills of
//! `sigkill_inside_each_phase_of_register_and_destroy_converges`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::testbed::{TestBed, TestCluster};

// ---------------------------------------------------------------------------
// helpers

/// A deterministic RNG (splitmix64): kill points and fuzz cases replay from
/// the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

fn seed() -> u64 {
    std::env::var("NAUTES_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(42)
        })
}

/// Waits until the worker has a namespace (the register is applying), or
/// panics with the run's output if it ended first.
async fn wait_for_namespace(bg: &mut Bg, c: &kube::Client, ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !namespace_exists(c, ns).await {
        if !bg.running() {
            let (o, e) = bg.output();
            panic!(
                "`{}` ended before namespace {ns} appeared\nstdout:\n{o}\nstderr:\n{e}",
                bg.args
            );
        }
        assert!(Instant::now() < deadline, "namespace {ns} never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Lease that locks a cluster name, if any.
async fn lease(mgmt: &kube::Client, name: &str) -> Option<Lease> {
    Api::<Lease>::namespaced(mgmt.clone(), "nautes")
        .get_opt(&format!("lock-{name}"))
        .await
        .ok()
        .flatten()
}

fn holder_of(l: &Lease) -> String {
    l.spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default()
}

/// Waits until a run's pid holds the cluster's Lease; returns the holder.
async fn wait_for_holder(bg: &mut Bg, mgmt: &kube::Client, name: &str) -> String {
    let want = format!(" pid {}", bg.pid());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(l) = lease(mgmt, name).await {
            let h = holder_of(&l);
            if h.ends_with(&want) {
                return h;
            }
        }
        if !bg.running() {
            let (o, e) = bg.output();
            panic!(
                "`{}` ended before it held the lock\nstdout:\n{o}\nstderr:\n{e}",
                bg.args
            );
        }
        assert!(
            Instant::now() < deadline,
            "pid {} never took the lock",
            bg.pid()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `status NAME -o json` says every component is ready.
fn assert_status_ready(name: &str, mgmt: &Path) {
    let st = run(&["status", name, "-o", "json"], Some(mgmt), &[]);
    assert_eq!(st.code, 0, "status failed:\n{}\n{}", st.stdout, st.stderr);
    assert_eq!(json_out(&st.stdout)["ready"], true, "{}", st.stdout);
}

fn spec_file(name: &str, worker: &TestCluster) -> (tempfile::TempDir, PathBuf) {
    write_temp(
        "spec.json",
        &physical_spec(name, "worker", worker, json!({})),
    )
}

// ---------------------------------------------------------------------------
// 1: the lock

/// A second register while one runs fails at once with exit code 3 naming
/// the holder of Lease nautes/lock-<name> ("user@host pid N"), and a lock
/// left by a SIGKILLed run expires on its own (real clock, no simulation) so
/// a later run succeeds. (API server outages: `outages_of_either_api_server_mid_apply_are_survived`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_serializes_runs_and_a_killed_runs_lock_expires() {
    let t0 = Instant::now();
    let bed = TestBed::start(&["management", "worker"]);
    eprintln!("[{:6.1}s] test bed up", t0.elapsed().as_secs_f64());
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let worker = bed.cluster("worker").clone();
    let mgmt = client(&mgmt_kc).await;
    let wc = client(&worker.kubeconfig).await;
    let name = "flaky";
    let (_d, spec_path) = spec_file(name, &worker);
    let sp = spec_path.to_str().expect("utf8");

    // while a register runs, a second register of the same name is refused
    let mut clean = Bg::spawn(
        &["register", "-f", sp, "--progress", "plain"],
        &mgmt_kc,
        &[],
    );
    let holder = wait_for_holder(&mut clean, &mgmt, name).await;
    let (user_host, pid) = holder
        .rsplit_once(" pid ")
        .expect("holder: user@host pid N");
    assert_eq!(pid, clean.pid().to_string(), "{holder}");
    assert!(
        user_host.contains('@') && !user_host.starts_with('@') && !user_host.ends_with('@'),
        "holder is not user@host pid N: {holder}"
    );
    let second = run(&["register", "-f", sp], Some(&mgmt_kc), &[]);
    assert_eq!(
        second.code, 3,
        "a concurrent register was not refused:\n{}",
        second.stderr
    );
    // refused at once: by the fast path (a Lease renewed recently), not
    // after watching it for its duration (that refusal says "while this
    // run waited"); the message says which, whatever the machine's load
    assert!(
        second.stderr.contains("after its holder stops renewing it")
            && !second.stderr.contains("while this run waited"),
        "the refusal was not the immediate one:\n{}",
        second.stderr
    );
    let block = error_block(&second.stderr);
    assert!(
        block.contains(&holder) && block.contains(&format!("nautes/lock-{name}")),
        "the refusal does not name the holder {holder:?} and the Lease:\n{}",
        second.stderr
    );
    assert!(
        clean.running(),
        "the lock holder ended while the second run was refused"
    );
    let clean = clean.finish(Duration::from_secs(300));
    assert_eq!(clean.code, 0, "clean register failed:\n{}", clean.stderr);
    eprintln!("[{:6.1}s] clean register done", t0.elapsed().as_secs_f64());
    let reference = objects(&wc, name).await;
    assert!(
        reference.len() > 20,
        "too few objects after the register: {reference:#?}"
    );
    assert_status_ready(name, &mgmt_kc);

    // a lock left by a killed run: refused while fresh, expires by itself
    let mut victim = Bg::spawn(&["register", "-f", sp], &mgmt_kc, &[]);
    let victim_holder = wait_for_holder(&mut victim, &mgmt, name).await;
    assert!(victim.kill(), "the run ended before it could be killed");
    let killed = Instant::now();
    let refused = run(&["register", "-f", sp], Some(&mgmt_kc), &[]);
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&victim_holder),
        "{}",
        refused.stderr
    );
    let after = until_unlocked(&["register", "-f", sp, "-o", "json"], &mgmt_kc, &[]);
    let waited = killed.elapsed();
    assert_eq!(
        after.code, 0,
        "no run succeeded after the lock expired:\n{}",
        after.stderr
    );
    eprintln!(
        "[{:6.1}s] a killed run's lock expired after {:.1}s",
        t0.elapsed().as_secs_f64(),
        waited.as_secs_f64()
    );
    // renewed every 5 s, valid 15 s: gone between 10 and ~16 s after the kill
    // (plus a run's duration and the 1 s retry step)
    assert!(
        waited >= Duration::from_secs(9) && waited <= Duration::from_secs(40),
        "the killed run's lock expired after {waited:?}"
    );
    assert_eq!(
        json_out(&after.stdout)["changes"]["created"],
        0,
        "{}",
        after.stdout
    );
    assert_eq!(objects(&wc, name).await, reference);
    eprintln!("[{:6.1}s] done", t0.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------
// 3: API server outages that must be survived

/// How a register across an outage went.
struct AcrossOutage {
    run: Run,
    /// The register's wall time.
    wall: Duration,
    /// From the moment the API server was gone to the moment it was asked
    /// to start again.
    down: Duration,
    /// From the stop until it answered /readyz again.
    outage: Duration,
    /// The register's progress output at the moment of the stop.
    at_stop: String,
}

/// The progress line of the stage's apply of Namespaces: the apply phase is
/// under way (the cluster-scoped and namespaced objects follow it).
const APPLYING: &str = "apply physical-worker: Namespaces:";
/// The first progress line after the apply phase.
const APPLIED: &str = "wait physical-worker:";

/// Starts `register` in the background, waits until its apply phase is in
/// progress (the progress line of the Namespaces and namespace argocd in
/// the worker), stops the API server of test cluster `which` for `down`,
/// starts it again and waits for the same register to end.
async fn register_across_outage(
    bed: &mut TestBed,
    which: &str,
    down: Duration,
    args: &[&str],
    mgmt_kc: &Path,
    worker: &TestCluster,
) -> AcrossOutage {
    let wc = client(&worker.kubeconfig).await;
    let began = Instant::now();
    let mut bg = Bg::spawn(args, mgmt_kc, &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, err) = bg.output();
        if err.contains(APPLYING) {
            break;
        }
        if !bg.running() {
            let (o, e) = bg.output();
            panic!(
                "`{}` ended before its apply phase\nstdout:\n{o}\nstderr:\n{e}",
                bg.args
            );
        }
        assert!(
            Instant::now() < deadline,
            "the apply phase never began:\n{err}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        namespace_exists(&wc, "argocd").await,
        "the progress says Namespaces were applied, but namespace argocd does not exist"
    );
    // in the middle of the apply phase: the readiness wait has not begun,
    // and the command still runs at the moment of the stop
    let (_, before) = bg.output();
    assert!(
        !before.contains(APPLIED),
        "the apply phase ended before the stop (the test came too late):\n{before}"
    );
    assert!(bg.running(), "the register ended before the stop");
    let stop = Instant::now();
    bed.command(&format!("stop-apiserver {which}"));
    let gone = Instant::now();
    let (_, at_stop) = bg.output();
    assert!(
        bg.running(),
        "the register ended while the {which} API server was being stopped:\n{at_stop}"
    );
    tokio::time::sleep(down).await;
    let down_for = gone.elapsed();
    bed.command(&format!("start-apiserver {which}"));
    let outage = stop.elapsed();
    let run = bg.finish(Duration::from_secs(600));
    AcrossOutage {
        run,
        wall: began.elapsed(),
        down: down_for,
        outage,
        at_stop,
    }
}

/// A register survives its API servers going away for a while. On one test
/// bed: first the reference, a clean register (with its wall time), then a
/// destroy; then, each on a clean worker again (destroy in between), the
/// same register with
/// 1. the management cluster's kube-apiserver stopped for 10 s,
/// 2. the runtime cluster's kube-apiserver stopped for 10 s,
/// 3. the management cluster's stopped for 20 s, longer than the lock's
///    15 s lease: the run waits in the lock's fence until it renewed its
///    Lease (its resourceVersion precondition proves nobody took it),
///
/// each stop in the middle of the apply phase (after the Namespaces, before
/// the readiness wait) while the command runs; that same run must exit 0,
/// and the worker's objects must have the content of the clean register's
/// (`content`: each object's spec or data, labels and owner references),
/// the management cluster the same objects, and `status` must be ready.
///
/// Last, --timeout bounds the retries: with the runtime API server stopped
/// mid-apply and left down, `register --timeout 15s` fails (exit 5, naming
/// the runtime cluster) soon after its 5 s instead of retrying for a fixed
/// minute; once the API server is back, a re-run converges to the same
/// content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_of_either_api_server_mid_apply_are_survived() {
    let t0 = Instant::now();
    let mut bed = TestBed::start(&["management", "worker"]);
    eprintln!("[{:6.1}s] test bed up", t0.elapsed().as_secs_f64());
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let worker = bed.cluster("worker").clone();
    let name = "outage";
    let (_d, spec_path) = spec_file(name, &worker);
    let sp = spec_path.to_str().expect("utf8");
    let register = ["register", "-f", sp, "--progress", "plain"];

    // the reference: a clean register on the fresh test bed
    let began = Instant::now();
    let clean = run(&register, Some(&mgmt_kc), &[]);
    let clean_wall = began.elapsed();
    assert_eq!(clean.code, 0, "clean register failed:\n{}", clean.stderr);
    let wc = client(&worker.kubeconfig).await;
    let mgmt = client(&mgmt_kc).await;
    let reference = content(&wc, name).await;
    assert!(
        reference.len() > 20,
        "too few objects after a clean register: {:#?}",
        reference.keys()
    );
    let mgmt_reference = objects(&mgmt, name).await;
    assert_status_ready(name, &mgmt_kc);
    eprintln!(
        "[{:6.1}s] clean register: {:.1}s, {} objects",
        t0.elapsed().as_secs_f64(),
        clean_wall.as_secs_f64(),
        reference.len()
    );
    let destroy = |wc: kube::Client, mgmt: kube::Client| {
        let mgmt_kc = mgmt_kc.clone();
        async move {
            let d = run(&["destroy", name], Some(&mgmt_kc), &[]);
            assert_eq!(d.code, 0, "destroy failed:\n{}", d.stderr);
            wait_nothing_left(&wc, name, "the worker").await;
            wait_nothing_left(&mgmt, name, "the management cluster").await;
        }
    };
    destroy(wc, mgmt).await;

    let mut figures = Vec::new();
    for (which, secs) in [("management", 10), ("worker", 10), ("management", 20)] {
        let down = Duration::from_secs(secs);
        let r = register_across_outage(&mut bed, which, down, &register, &mgmt_kc, &worker).await;
        eprintln!(
            "[{:6.1}s] {which} API server down {:.1}s ({:.1}s until it answered again) mid-apply; register: exit {} after {:.1}s",
            t0.elapsed().as_secs_f64(),
            r.down.as_secs_f64(),
            r.outage.as_secs_f64(),
            r.run.code,
            r.wall.as_secs_f64()
        );
        assert!(r.down >= down, "the outage lasted only {:?}", r.down);
        assert_eq!(
            r.run.code, 0,
            "the register did not survive {secs}s without the {which} API server; its progress at the stop:\n{}\nits output:\n{}",
            r.at_stop, r.run.stderr
        );
        assert!(
            !r.run.stderr.lines().any(|l| l.starts_with("error")),
            "a register that exits 0 reports an error:\n{}",
            r.run.stderr
        );
        // fresh clients: the old ones' connections died with the API server
        let wc = client(&worker.kubeconfig).await;
        let mgmt = client(&mgmt_kc).await;
        let got = content(&wc, name).await;
        assert!(
            got == reference,
            "after {secs}s without the {which} API server the worker's objects differ from a clean register's:\n{}",
            content_difference(&got, &reference)
        );
        assert_eq!(
            objects(&mgmt, name).await,
            mgmt_reference,
            "after {secs}s without the {which} API server the management cluster's objects differ"
        );
        assert_status_ready(name, &mgmt_kc);
        figures.push(format!(
            "{which} down {:.1}s (answering again after {:.1}s): register {:.1}s",
            r.down.as_secs_f64(),
            r.outage.as_secs_f64(),
            r.wall.as_secs_f64()
        ));
        destroy(wc, mgmt).await;
    }

    // --timeout bounds the retries: the runtime API server stays down
    let wc = client(&worker.kubeconfig).await;
    let began = Instant::now();
    let mut bg = Bg::spawn(
        &[
            "register",
            "-f",
            sp,
            "--progress",
            "plain",
            "--timeout",
            "15s",
        ],
        &mgmt_kc,
        &[],
    );
    // 15 s, not less: --timeout bounds the waits before the Namespaces too
    // (the CRDs' establishment), which a loaded machine can make long
    wait_for_namespace(&mut bg, &wc, "argocd").await;
    bed.command("stop-apiserver worker");
    let failed = bg.finish(Duration::from_secs(120));
    let took = began.elapsed();
    bed.command("start-apiserver worker");
    eprintln!(
        "[{:6.1}s] register --timeout 15s with the worker API server down: exit {} after {:.1}s",
        t0.elapsed().as_secs_f64(),
        failed.code,
        took.as_secs_f64()
    );
    assert_eq!(
        failed.code, 5,
        "register --timeout 15s with the runtime API server down:\n{}",
        failed.stderr
    );
    let block = error_block(&failed.stderr);
    assert!(
        block.contains(&format!("runtime cluster {name}")) && block.contains("cannot reach"),
        "the error does not say the runtime cluster cannot be reached:\n{}",
        failed.stderr
    );
    // it retried until its --timeout (the lower bound), and not for the
    // fixed minute retries used to take: the only upper bound is that
    // minute, which the old behaviour could not finish under
    assert!(
        took >= Duration::from_secs(15) && took < Duration::from_secs(60),
        "register --timeout 15s gave up after {took:?}"
    );
    let again = until_unlocked(&register, &mgmt_kc, &[]);
    assert_eq!(
        again.code, 0,
        "the re-run did not converge:\n{}",
        again.stderr
    );
    let wc = client(&worker.kubeconfig).await;
    let got = content(&wc, name).await;
    assert!(
        got == reference,
        "after the re-run the worker's objects differ from a clean register's:\n{}",
        content_difference(&got, &reference)
    );
    eprintln!(
        "[{:6.1}s] figures: clean register {:.1}s; {}",
        t0.elapsed().as_secs_f64(),
        clean_wall.as_secs_f64(),
        figures.join("; ")
    );
}

// ---------------------------------------------------------------------------
// 2: SIGKILL inside each phase of measured runs

/// One event of `--progress json`.
struct Event {
    elapsed: f64,
    level: String,
    step: String,
    message: String,
}

/// The events a run has printed so far (a line still being written is
/// skipped).
fn events(stderr: &str) -> Vec<Event> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            Some(Event {
                elapsed: v["elapsed"].as_f64()?,
                level: v["level"].as_str()?.to_string(),
                step: v["step"].as_str()?.to_string(),
                message: v["message"].as_str()?.to_string(),
            })
        })
        .collect()
}

/// The phases a kill is aimed at, as issue 13 names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Validation, preflight, render, the permission check and the lock:
    /// nothing is written to the runtime cluster yet.
    BeforeCrds,
    /// From the stage's announcement (`install physical-worker: ...`): its
    /// plan, the registration record, the CustomResourceDefinitions,
    /// Namespaces, cluster-scoped and namespaced objects (the credential is
    /// minted as soon as its objects exist).
    Apply,
    /// From `wait physical-worker: N workloads to become ready` until they
    /// are.
    ReadinessWait,
    /// After the wait: webhook configurations, the credential's check, the
    /// Argo CD cluster Secret and the record.
    Registration,
    /// Anywhere in a destroy.
    Destroy,
}

const REGISTER_PHASES: [Phase; 4] = [
    Phase::BeforeCrds,
    Phase::Apply,
    Phase::ReadinessWait,
    Phase::Registration,
];

/// Which event begins a register phase.
fn begins(p: Phase, e: &Event) -> bool {
    match p {
        Phase::Apply => e.step.starts_with("install "),
        Phase::ReadinessWait => e.step.starts_with("wait ") && e.level == "info",
        Phase::Registration => e.step.starts_with("wait ") && e.level == "done",
        Phase::BeforeCrds | Phase::Destroy => false,
    }
}

/// The phase a register was in, by the progress it had printed.
fn register_phase(evs: &[Event]) -> Phase {
    let mut at = Phase::BeforeCrds;
    for e in evs {
        for p in REGISTER_PHASES {
            if begins(p, e) {
                at = at.max(p);
            }
        }
    }
    at
}

/// When each phase of an uninterrupted register began (seconds after its
/// start, by its own progress) and when it ended.
struct Timing {
    starts: [f64; 4],
    end: f64,
}

impl Timing {
    fn of(r: &Run, what: &str) -> Timing {
        assert_eq!(r.code, 0, "{what} failed:\n{}", r.stderr);
        let evs = events(&r.stderr);
        let mut starts = [0.0; 4];
        for (i, p) in REGISTER_PHASES.iter().enumerate().skip(1) {
            starts[i] = evs
                .iter()
                .find(|e| begins(*p, e))
                .map(|e| e.elapsed)
                .unwrap_or_else(|| panic!("{what}: no line begins phase {p:?}:\n{}", r.stderr));
        }
        let end = evs.last().map_or(0.0, |e| e.elapsed);
        assert!(
            starts.windows(2).all(|w| w[0] <= w[1]) && starts[3] <= end,
            "{what}: its phases are out of order:\n{}",
            r.stderr
        );
        Timing { starts, end }
    }

    /// How long phase `p` lasted.
    fn window(&self, p: Phase) -> Duration {
        let i = REGISTER_PHASES
            .iter()
            .position(|x| *x == p)
            .expect("a register phase");
        let next = self.starts.get(i + 1).copied().unwrap_or(self.end);
        Duration::from_secs_f64((next - self.starts[i]).max(0.0))
    }

    fn describe(&self) -> String {
        format!(
            "before CRDs {:.0} ms, apply {:.0} ms, readiness wait {:.0} ms, registration {:.0} ms (total {:.2} s)",
            self.window(Phase::BeforeCrds).as_secs_f64() * 1e3,
            self.window(Phase::Apply).as_secs_f64() * 1e3,
            self.window(Phase::ReadinessWait).as_secs_f64() * 1e3,
            self.window(Phase::Registration).as_secs_f64() * 1e3,
            self.end
        )
    }
}

/// What a destroy was doing, by the progress it had printed.
fn destroy_step(evs: &[Event]) -> &'static str {
    match evs
        .iter()
        .rev()
        .find(|e| e.step == "destroy")
        .map(|e| e.message.as_str())
    {
        None => "locking, reading the inventory",
        Some(m) if m.contains("in the inventory") => "deleting the objects",
        Some(m) if m.contains("and gone") => "removing the credential",
        Some(m) if m.contains("credential removed") => "removing the record",
        Some(_) => "ending",
    }
}

/// A kill and what it hit.
struct Kill {
    /// What was killed, in which state of the clusters.
    run: &'static str,
    aimed: Phase,
    /// After the spawn.
    at: Duration,
    /// The kill interrupted a running command (it died of the SIGKILL).
    running: bool,
    /// The phase its progress said it was in at the kill.
    hit: Phase,
    /// For a destroy: the step it was in.
    step: &'static str,
    /// The run after it, which had to converge.
    then: &'static str,
}

/// Starts `register` and SIGKILLs it `offset` after phase `aim` began (by
/// its progress lines, read every 2 ms; `BeforeCrds` begins at the spawn).
/// Returns the kill (without `run` and `then`, filled by the caller).
fn kill_register(sp: &str, mgmt_kc: &Path, aim: Phase, offset: Duration) -> Kill {
    let mut bg = Bg::spawn(&["register", "-f", sp, "--progress", "json"], mgmt_kc, &[]);
    let began = Instant::now();
    let deadline = began + Duration::from_secs(120);
    while bg.running() && register_phase(&events(&bg.output().1)) < aim {
        assert!(
            Instant::now() < deadline,
            "phase {aim:?} never began: {:?}",
            bg.output()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(offset);
    let at = began.elapsed();
    let running = bg.kill_running();
    // what it had printed when it died
    let hit = register_phase(&events(&bg.output().1));
    Kill {
        run: "",
        aimed: aim,
        at,
        running,
        hit,
        step: "",
        then: "",
    }
}

/// SIMULATED EXPIRY: moves a killed run's Lease renewTime two minutes into
/// the past and its leaseDurationSeconds to 1, as if its holder's 15 s had
/// passed, so the next run takes it over through the plugin's takeover path
/// (it watches the Lease unchanged for the Lease's duration, then replaces
/// it with a resourceVersion precondition) after 1 s instead of the ~25 s a
/// real expiry costs (15 s until it looks abandoned, 15 s of watching).
async fn expire_lease(mgmt: &kube::Client, name: &str) {
    let past = Timestamp::from_second(Timestamp::now().as_second() - 120).expect("timestamp");
    let patch = json!({"spec": {"renewTime": MicroTime(past), "leaseDurationSeconds": 1}});
    let api: Api<Lease> = Api::namespaced(mgmt.clone(), "nautes");
    match api
        .patch(
            &format!("lock-{name}"),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => panic!("expiring lock-{name}: {e}"),
    }
}

/// The bearer tokens of the worker's nautes-manager token Secrets.
async fn worker_tokens(wc: &kube::Client) -> Vec<String> {
    Api::<Secret>::namespaced(wc.clone(), "nautes-system")
        .list(&kube::api::ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("listing the worker's Secrets in nautes-system: {e}"))
        .items
        .into_iter()
        .filter(|s| s.type_.as_deref() == Some("kubernetes.io/service-account-token"))
        .filter_map(|s| {
            s.data?
                .get("token")
                .map(|t| String::from_utf8_lossy(&t.0).into_owned())
        })
        .collect()
}

/// The management cluster's objects of a cluster by content (`content`),
/// with what differs between two equal registers by nature replaced: the
/// record's times, and in the Argo CD cluster Secret and the credential's
/// copy the bearer token, which must be the worker's nautes-manager token
/// (only then is it replaced by a placeholder; a token is never printed).
async fn mgmt_content(
    mgmt: &kube::Client,
    wc: &kube::Client,
    name: &str,
) -> std::collections::BTreeMap<String, String> {
    let tokens = worker_tokens(wc).await;
    let mut all = content(mgmt, name).await;
    for (key, text) in all.iter_mut() {
        let mut v: Value = serde_json::from_str(text).expect("content is JSON");
        if let Some(r) = v["data"]["record.json"].as_str() {
            let mut rec: Value = serde_json::from_str(r).expect("record.json is JSON");
            if let Some(o) = rec.as_object_mut() {
                o.remove("registeredAt");
                o.remove("updatedAt");
            }
            v["data"]["record.json"] = Value::String(rec.to_string());
        }
        if key.starts_with("Secret ")
            && let Some(cfg) = v["data"]["config"].as_str()
        {
            let mut cfg: Value = serde_json::from_str(&base64_decode(cfg))
                .unwrap_or_else(|e| panic!("{key}: config is not JSON: {e}"));
            let t = cfg["bearerToken"].as_str().unwrap_or_default().to_string();
            cfg["bearerToken"] = Value::String(if tokens.contains(&t) {
                "<the worker's nautes-manager token>".into()
            } else {
                format!(
                    "<a token the worker does not hold, sha256 {}>",
                    content_hash(&t)
                )
            });
            v["data"]["config"] = Value::String(cfg.to_string());
        }
        *text = serde_json::to_string(&v).expect("json");
    }
    all
}

/// Each object's content hash, by key.
fn hashes(
    c: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    c.iter()
        .map(|(k, v)| (k.clone(), content_hash(v)))
        .collect()
}

/// The clusters of the kill test and the content a clean register leaves.
struct Killing {
    mgmt_kc: PathBuf,
    worker: TestCluster,
    mgmt: kube::Client,
    wc: kube::Client,
    name: &'static str,
    spec_path: PathBuf,
    reference: std::collections::BTreeMap<String, String>,
    mgmt_reference: std::collections::BTreeMap<String, String>,
    seed: u64,
    /// How often Traefik's node ports were moved (see `converge_register`).
    moved: u16,
}

impl Killing {
    fn sp(&self) -> String {
        self.spec_path.to_str().expect("utf8").to_string()
    }

    /// Both clusters hold what a clean register leaves, by content.
    async fn assert_reference(&self, after: &str) {
        let got = content(&self.wc, self.name).await;
        assert!(
            hashes(&got) == hashes(&self.reference),
            "{after} (seed {}): the worker's objects differ from a clean register's:\n{}",
            self.seed,
            content_difference(&got, &self.reference)
        );
        let got = mgmt_content(&self.mgmt, &self.wc, self.name).await;
        assert!(
            hashes(&got) == hashes(&self.mgmt_reference),
            "{after} (seed {}): the management cluster's objects differ from a clean register's:\n{}",
            self.seed,
            content_difference(&got, &self.mgmt_reference)
        );
    }

    /// The content a clean register leaves, taken now.
    async fn take_reference(&mut self) {
        self.reference = content(&self.wc, self.name).await;
        self.mgmt_reference = mgmt_content(&self.mgmt, &self.wc, self.name).await;
        assert!(
            self.reference.len() > 20,
            "too few objects after a clean register: {:#?}",
            self.reference.keys()
        );
        assert_status_ready(self.name, &self.mgmt_kc);
    }

    /// The register after a kill: exit 0, and both clusters hold what a
    /// clean register leaves. With `wait_for_lock`, it retries while the
    /// killed run's Lease is fresh (a real expiry).
    async fn converge_register(&mut self, after: &str, wait_for_lock: bool) {
        let sp = self.sp();
        let args = ["register", "-f", &sp, "-o", "json"];
        let go = |args: &[&str]| {
            if wait_for_lock {
                until_unlocked(args, &self.mgmt_kc, &[])
            } else {
                run(args, Some(&self.mgmt_kc), &[])
            }
        };
        let r = go(&args);
        if r.code != 0 && r.stderr.contains("provided port is already allocated") {
            // Upstream behaviour, seen with some kill points: a register
            // killed while kube-apiserver creates Service traefik/traefik
            // can leave its node port allocated with no Service holding it;
            // kube-apiserver's repair loop frees it only after about 10
            // minutes. The plugin must say so (exit 7 with the way out),
            // and the way out must work: the user moves Traefik to other
            // node ports and registers again. What a clean register leaves
            // is then taken again with the new ports.
            assert_eq!(r.code, 7, "{}", r.stderr);
            assert!(
                r.stderr.contains("choose another port in the spec or wait"),
                "the error does not explain the leaked node port:\n{}",
                r.stderr
            );
            self.moved += 1;
            let (http, https) = (30180 + self.moved, 30543 + self.moved);
            eprintln!(
                "seed {}: a node port leaked by kube-apiserver; moving Traefik to {http}/{https}",
                self.seed
            );
            std::fs::write(
                &self.spec_path,
                physical_spec(
                    self.name,
                    "worker",
                    &self.worker,
                    json!({"traefik": {"http_node_port": http, "https_node_port": https}}),
                ),
            )
            .expect("rewrite spec");
            let r = until_unlocked(&args, &self.mgmt_kc, &[]);
            assert_eq!(r.code, 0, "{after} with new node ports:\n{}", r.stderr);
            let (got, mgmt_got) = (
                content(&self.wc, self.name).await,
                mgmt_content(&self.mgmt, &self.wc, self.name).await,
            );
            self.converge_destroy(
                "a destroy before the new reference",
                &["destroy", self.name],
            )
            .await;
            run(&args, Some(&self.mgmt_kc), &[]).ok();
            self.take_reference().await;
            assert!(
                hashes(&got) == hashes(&self.reference)
                    && hashes(&mgmt_got) == hashes(&self.mgmt_reference),
                "{after} (seed {}): differs from a clean register's:\n{}\n{}",
                self.seed,
                content_difference(&got, &self.reference),
                content_difference(&mgmt_got, &self.mgmt_reference)
            );
            return;
        }
        assert_eq!(
            r.code, 0,
            "{after} (seed {}): the register did not converge:\n{}",
            self.seed, r.stderr
        );
        self.assert_reference(after).await;
    }

    /// The destroy after a kill: exit 0 (or "not registered" when the
    /// killed run had removed the record, or never wrote one), then nothing
    /// is left in either cluster.
    async fn converge_destroy(&self, after: &str, args: &[&str]) -> Run {
        let r = run(args, Some(&self.mgmt_kc), &[]);
        assert!(
            r.code == 0 || (r.code == 3 && r.stderr.contains("not registered")),
            "{after} (seed {}): the destroy failed:\n{}",
            self.seed,
            r.stderr
        );
        wait_nothing_left(&self.mgmt, self.name, "the management cluster").await;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let left = objects(&self.wc, self.name).await;
            if left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                // the credential's binding is removed by garbage collection
                // with its Namespace: show whether it was made its dependent
                let owners =
                    Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(self.wc.clone())
                        .get_opt("nautes-manager")
                        .await
                        .ok()
                        .flatten()
                        .map(|b| format!("{:?}", b.metadata.owner_references));
                panic!(
                    "{after} (seed {}): destroy left {} object(s) in the worker, e.g. {:#?}\n\
                     ClusterRoleBinding nautes-manager ownerReferences: {owners:?}\n\
                     destroy said:\n{}",
                    self.seed,
                    left.len(),
                    &left[..left.len().min(8)],
                    r.stderr
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        r
    }
}

/// Register and destroy are SIGKILLed 20 times at points drawn (seeded,
/// printed; `NAUTES_FAULTS_SEED=<n>` replays) inside uninterrupted runs
/// measured first on the same clusters: a register from a clean worker, a
/// register of the registered cluster (nothing to change) and a destroy.
/// A register's kill waits for the progress line that begins the phase it
/// aims at, then for a random part of that phase's measured length; a
/// destroy's is drawn across the whole measured destroy (stratified). Each
/// kill records the phase its progress shows at the kill and whether the
/// command died of the signal. The kills:
///
/// - 3 from a clean worker, each followed by a destroy that must leave
///   nothing: 2 before the CRDs (`destroy NAME -f SPEC`), 1 in the apply
///   phase right after the credential's copy was saved (`destroy NAME`);
/// - 6 cycles from a clean worker: a register killed (apply, readiness
///   wait, registration, twice each), a register that must converge, a
///   destroy killed (5 at stratified points of the measured destroy, the
///   last right after its inventory is gone, in its credential's removal),
///   a destroy that must converge (`destroy NAME -f SPEC`: once the
///   cluster has deleted the credential's ServiceAccount its token is
///   rejected and destroy asks for the spec's kubeconfig);
/// - 5 registers of the registered cluster killed (before the CRDs, apply,
///   readiness wait, registration twice), each followed by a register.
///
/// Converging means exit 0, and for a register both clusters holding what
/// the clean register left, by content (`content`: a hash of each object's
/// spec or data, labels and owner references; in the management cluster
/// the record's times and the bearer token, which must be the worker's,
/// are left out), for a destroy nothing left in either cluster.
///
/// The Lease of the first cycle's killed register expires for real (the
/// next register waits for it: ~25 s); every other killed run's Lease is
/// expired by the test (SIMULATED, see `expire_lease`) so the test does
/// not wait 19 more times.
///
/// Asserted: at least 18 of the 20 kills hit a running command, and each
/// phase (before the CRDs, apply, readiness wait, registration, destroy)
/// was hit by at least one of those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_inside_each_phase_of_register_and_destroy_converges() {
    let t0 = Instant::now();
    let at = || format!("[{:6.1}s]", t0.elapsed().as_secs_f64());
    let bed = TestBed::start(&["management", "worker"]);
    eprintln!("{} test bed up", at());
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let worker = bed.cluster("worker").clone();
    let name = "killed";
    let (_d, spec_path) = spec_file(name, &worker);
    let seed = seed();
    eprintln!("NAUTES_FAULTS_SEED={seed}");
    let mut rng = Rng(seed);
    let mut k = Killing {
        mgmt: client(&mgmt_kc).await,
        wc: client(&worker.kubeconfig).await,
        mgmt_kc,
        worker,
        name,
        spec_path,
        reference: Default::default(),
        mgmt_reference: Default::default(),
        seed,
        moved: 0,
    };
    let sp = k.sp();
    let mgmt_kc = k.mgmt_kc.clone();
    let register_json = ["register", "-f", &sp, "--progress", "json"];
    let destroy_json = ["destroy", name, "--progress", "json"];

    // the uninterrupted runs, measured
    let began = Instant::now();
    let clean = run(&register_json, Some(&mgmt_kc), &[]);
    let register_wall = began.elapsed();
    let fresh = Timing::of(&clean, "the uninterrupted register");
    k.take_reference().await;
    let began = Instant::now();
    let again = run(&register_json, Some(&mgmt_kc), &[]);
    let again_wall = began.elapsed();
    let unchanged = Timing::of(
        &again,
        "the uninterrupted register of the registered cluster",
    );
    k.assert_reference("a second uninterrupted register").await;
    let began = Instant::now();
    let d = run(&destroy_json, Some(&mgmt_kc), &[]);
    let destroy_wall = began.elapsed();
    assert_eq!(d.code, 0, "the uninterrupted destroy failed:\n{}", d.stderr);
    k.converge_destroy("the uninterrupted destroy", &["destroy", name])
        .await;
    let evs = events(&d.stderr);
    let when = |m: &str| {
        evs.iter()
            .find(|e| e.message.contains(m))
            .map(|e| e.elapsed)
            .unwrap_or_else(|| panic!("no {m:?} in the destroy's progress:\n{}", d.stderr))
    };
    let credential_step =
        Duration::from_secs_f64((when("credential removed") - when("and gone")).max(0.0));
    let destroy_steps: Vec<String> = events(&d.stderr)
        .iter()
        .map(|e| {
            format!(
                "{:.1}s {}",
                e.elapsed,
                destroy_step(std::slice::from_ref(e))
            )
        })
        .collect();
    eprintln!(
        "{} uninterrupted: register {:.2}s ({}); register again {:.2}s ({}); destroy {:.2}s (steps began: {})",
        at(),
        register_wall.as_secs_f64(),
        fresh.describe(),
        again_wall.as_secs_f64(),
        unchanged.describe(),
        destroy_wall.as_secs_f64(),
        destroy_steps.join(", ")
    );

    // a random part of a phase's measured length: a registration lasts
    // tens of milliseconds, and the readiness wait and every phase of a
    // register with nothing to change vary with the test bed's load by
    // more than their length, so those kills come in the first half
    let offset = |rng: &mut Rng, t: &Timing, p: Phase| {
        let nothing_to_change = t.starts == unchanged.starts;
        let (lo, hi) = match p {
            Phase::Registration => (0, 500),
            Phase::ReadinessWait => (50, 500),
            _ if nothing_to_change => (50, 500),
            _ => (50, 850),
        };
        t.window(p).mul_f64(rng.range(lo, hi) as f64 / 1000.0)
    };
    let mut kills: Vec<Kill> = Vec::new();
    let log = |kill: &Kill, n: usize| {
        eprintln!(
            "{} kill {n:2}: {} aimed at {:?}, at {} ms: {} ({}); then {}",
            at(),
            kill.run,
            kill.aimed,
            kill.at.as_millis(),
            if kill.running {
                "interrupted it"
            } else {
                "it had ended"
            },
            if kill.step.is_empty() {
                format!("{:?}", kill.hit)
            } else {
                kill.step.to_string()
            },
            kill.then
        )
    };

    // 1. from a clean worker, a register killed, then a destroy
    for aim in [Phase::BeforeCrds, Phase::BeforeCrds] {
        let o = offset(&mut rng, &fresh, aim);
        let mut kill = kill_register(&sp, &mgmt_kc, aim, o);
        kill.run = "register (clean worker)";
        kill.then = "destroy -f";
        log(&kill, kills.len() + 1);
        expire_lease(&k.mgmt, name).await;
        k.converge_destroy(
            "a destroy -f after a killed register",
            &["destroy", name, "-f", &sp],
        )
        .await;
        kills.push(kill);
    }
    {
        // killed as soon as its credential is saved (Secret
        // nautes/credential-<name> in the management cluster: the first
        // thing it writes after the credential's own objects)
        let mut bg = Bg::spawn(&register_json, &mgmt_kc, &[]);
        let began = Instant::now();
        let copies: Api<Secret> = Api::namespaced(k.mgmt.clone(), "nautes");
        while !matches!(
            copies.get_metadata_opt(&format!("credential-{name}")).await,
            Ok(Some(_))
        ) {
            assert!(
                bg.running(),
                "the register ended before it saved its credential: {:?}",
                bg.output()
            );
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "the register never saved its credential"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let kill_at = began.elapsed();
        let running = bg.kill_running();
        let kill = Kill {
            run: "register (clean worker) at its credential's copy",
            aimed: Phase::Apply,
            at: kill_at,
            running,
            hit: register_phase(&events(&bg.output().1)),
            step: "",
            then: "destroy",
        };
        log(&kill, kills.len() + 1);
        expire_lease(&k.mgmt, name).await;
        k.converge_destroy(
            "a destroy after a register killed at its credential",
            &["destroy", name],
        )
        .await;
        kills.push(kill);
    }
    eprintln!(
        "{} killed registers followed by destroys: nothing left",
        at()
    );

    // 2. cycles from a clean worker
    let cycles = [
        Phase::Apply,
        Phase::ReadinessWait,
        Phase::Registration,
        Phase::Apply,
        Phase::ReadinessWait,
        Phase::Registration,
    ];
    let mut real_expiry = None;
    for (i, aim) in cycles.iter().copied().enumerate() {
        let o = offset(&mut rng, &fresh, aim);
        let mut kill = kill_register(&sp, &mgmt_kc, aim, o);
        kill.run = "register (clean worker)";
        kill.then = "register";
        log(&kill, kills.len() + 1);
        let killed = Instant::now();
        if i == 0 {
            // REAL EXPIRY: the killed run's Lease is left alone; the next
            // register is refused while it is fresh, then takes it over
            // once it has watched it unchanged for its duration
            k.converge_register(
                "a register after a killed register (real lock expiry)",
                true,
            )
            .await;
            let waited = killed.elapsed();
            eprintln!(
                "{} the killed run's Lease expired for real: the next register succeeded and its content was checked {:.1}s after the kill",
                at(),
                waited.as_secs_f64()
            );
            real_expiry = Some(waited);
        } else {
            expire_lease(&k.mgmt, name).await;
            k.converge_register("a register after a killed register", false)
                .await;
        }
        kills.push(kill);

        if i + 1 == cycles.len() {
            // 3. registers of the registered cluster killed
            for aim in [
                Phase::BeforeCrds,
                Phase::Apply,
                Phase::ReadinessWait,
                Phase::Registration,
                Phase::Registration,
            ] {
                let o = offset(&mut rng, &unchanged, aim);
                let mut kill = kill_register(&sp, &mgmt_kc, aim, o);
                kill.run = "register (registered cluster)";
                kill.then = "register";
                log(&kill, kills.len() + 1);
                expire_lease(&k.mgmt, name).await;
                k.converge_register(
                    "a register after a killed register of the registered cluster",
                    false,
                )
                .await;
                kills.push(kill);
            }
            // converged: one more register changes nothing
            let again = run(&["register", "-f", &sp, "-o", "json"], Some(&mgmt_kc), &[]);
            assert_eq!(again.code, 0, "{}", again.stderr);
            let c = &json_out(&again.stdout)["changes"];
            assert_eq!(
                (
                    c["created"].as_u64(),
                    c["configured"].as_u64(),
                    c["pruned"].as_u64()
                ),
                (Some(0), Some(0), Some(0)),
                "a register after the kills still changed things (seed {seed}): {c}"
            );
        }

        // a destroy killed at a point of the whole measured destroy; the
        // last one right after its inventory was gone, in the first part of
        // its credential's removal (a kill there once left a credential
        // without its rights, and the next destroy failed with 403)
        let last = i + 1 == cycles.len();
        let point = if last {
            credential_step.mul_f64(rng.range(0, 300) as f64 / 1000.0)
        } else {
            destroy_wall
                .mul_f64((i as f64 + rng.range(100, 900) as f64 / 1000.0) / cycles.len() as f64)
        };
        let mut bg = Bg::spawn(&destroy_json, &mgmt_kc, &[]);
        let began = Instant::now();
        while last && bg.running() && !bg.output().1.contains("and gone") {
            assert!(
                began.elapsed() < Duration::from_secs(120),
                "{:?}",
                bg.output()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(point);
        let kill_at = began.elapsed();
        let running = bg.kill_running();
        let evs = events(&bg.output().1);
        let kill = Kill {
            run: "destroy",
            aimed: Phase::Destroy,
            at: kill_at,
            running,
            hit: Phase::Destroy,
            step: destroy_step(&evs),
            then: "destroy",
        };
        log(&kill, kills.len() + 1);
        expire_lease(&k.mgmt, name).await;
        // with -f: once the cluster has deleted the credential's
        // ServiceAccount, its token is rejected (401) and destroy asks for
        // the spec's kubeconfig (or --force)
        let r = k
            .converge_destroy(
                "a destroy after a killed destroy",
                &["destroy", name, "-f", &sp],
            )
            .await;
        for l in r
            .stderr
            .lines()
            .filter(|l| l.contains("interrupted destroy"))
        {
            eprintln!("{}   the next destroy: {l}", at());
        }
        kills.push(kill);
    }

    // the figures, then what they must show
    let interrupted = kills.iter().filter(|k| k.running).count();
    let mut per_phase = Vec::new();
    for p in REGISTER_PHASES.iter().chain([Phase::Destroy].iter()) {
        let aimed = kills.iter().filter(|k| k.aimed == *p).count();
        let hit = kills.iter().filter(|k| k.running && k.hit == *p).count();
        per_phase.push((*p, aimed, hit));
    }
    eprintln!("{} kills (seed {seed}):", at());
    for (i, kill) in kills.iter().enumerate() {
        eprintln!(
            "  {:2}. {:50} aimed {:13} at {:5} ms: {:14} {}",
            i + 1,
            kill.run,
            format!("{:?}", kill.aimed),
            kill.at.as_millis(),
            if kill.running {
                "interrupted"
            } else {
                "had ended"
            },
            if kill.step.is_empty() {
                format!("{:?}", kill.hit)
            } else {
                kill.step.to_string()
            }
        );
    }
    eprintln!(
        "{} {interrupted}/{} kills hit a running command; per phase (aimed, hit while running): {per_phase:?}; real lock expiry after {:.1}s; total {:.1}s",
        at(),
        kills.len(),
        real_expiry.map_or(0.0, |d| d.as_secs_f64()),
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(kills.len(), 20);
    assert!(
        interrupted >= 18,
        "only {interrupted} of 20 kills hit a running command (seed {seed})"
    );
    for (p, _, hit) in &per_phase {
        assert!(
            *hit >= 1,
            "no kill hit phase {p:?} while it ran (seed {seed}): {per_phase:?}"
        );
    }
    // renewed every 5 s, valid 15 s, then watched unchanged for 15 s: at
    // least 25 s after the kill
    let waited = real_expiry.expect("the real expiry");
    assert!(
        waited >= Duration::from_secs(24),
        "the killed run's Lease was taken over after {waited:?}, before it could have expired"
    );
}

// ---------------------------------------------------------------------------
// 4: unreachable, wrong CA, wrong token, failing exec plugin

/// A kubeconfig derived from a test cluster's, with its cluster or user
/// replaced.
fn kubeconfig_variant(base: &TestCluster, f: impl FnOnce(&mut Value)) -> String {
    let text = std::fs::read_to_string(&base.kubeconfig).expect("kubeconfig");
    let mut kc: Value = serde_saphyr::from_str(&text).expect("kubeconfig YAML");
    f(&mut kc);
    kc.to_string()
}

/// The certificate-authority-data of a test cluster's kubeconfig.
fn ca_of(c: &TestCluster) -> String {
    let text = std::fs::read_to_string(&c.kubeconfig).expect("kubeconfig");
    let kc: Value = serde_saphyr::from_str(&text).expect("yaml");
    kc["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .expect("ca")
        .to_string()
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Each bad credential or address, as the management cluster (`list`) and as
/// a runtime cluster (`register` preflight), fails with exit code 5 and one
/// clear error naming which cluster: exactly one `error: ` line for the
/// management cluster; for register, the preflight error block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_addresses_and_credentials_fail_with_one_clear_error_naming_the_cluster() {
    let t0 = Instant::now();
    let bed = TestBed::start(&["management", "worker"]);
    let mgmt_cluster = bed.cluster("management").clone();
    let worker = bed.cluster("worker").clone();
    let mgmt_kc = mgmt_cluster.kubeconfig.clone();
    let scripts = tempfile::tempdir().expect("dir");
    let failing = scripts.path().join("failing-credential-plugin");
    std::fs::write(
        &failing,
        "#!/bin/sh\necho 'the credential plugin is broken' >&2\nexit 1\n",
    )
    .expect("write script");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let port = closed_port();

    // (kind, what the message must say, variant of a cluster's kubeconfig)
    type Variant = Box<dyn Fn(&TestCluster, &TestCluster) -> String>;
    let failing_s = failing.to_str().expect("utf8").to_string();
    // the last one also checks that a plugin's output and environment, which
    // hold credentials, never reach a message (src/error.rs: no error may
    // carry a secret)
    let leaky = scripts.path().join("leaky-credential-plugin");
    std::fs::write(
        &leaky,
        "#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"plugin-printed-token-8c1e\"}}'\necho 'denied' >&2\nexit 1\n",
    )
    .expect("write script");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&leaky, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let leaky_s = leaky.to_str().expect("utf8").to_string();
    const NONE: &[&str] = &[];
    let cases: Vec<(&str, &[&str], &[&str], Variant)> = vec![
        (
            "unreachable",
            &["cannot reach", "refused"],
            NONE,
            Box::new(move |c, _| {
                kubeconfig_variant(c, |kc| {
                    kc["clusters"][0]["cluster"]["server"] =
                        json!(format!("https://127.0.0.1:{port}"));
                })
            }),
        ),
        (
            "wrong CA",
            &["certificate"],
            NONE,
            Box::new(|c, other| {
                let ca = ca_of(other);
                kubeconfig_variant(c, |kc| {
                    kc["clusters"][0]["cluster"]["certificate-authority-data"] = json!(ca);
                })
            }),
        ),
        (
            "wrong token",
            &["401"],
            &["not-a-valid-token-5f1d2c"],
            Box::new(|c, _| {
                kubeconfig_variant(c, |kc| {
                    kc["users"][0]["user"] = json!({"token": "not-a-valid-token-5f1d2c"});
                })
            }),
        ),
        (
            "failing exec plugin",
            &["authenticate"],
            NONE,
            Box::new(move |c, _| {
                let cmd = failing_s.clone();
                kubeconfig_variant(c, |kc| {
                    kc["users"][0]["user"] = json!({"exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": cmd,
                        "interactiveMode": "Never",
                    }});
                })
            }),
        ),
        (
            "exec plugin /bin/false",
            &["authenticate"],
            NONE,
            Box::new(|c, _| {
                kubeconfig_variant(c, |kc| {
                    kc["users"][0]["user"] = json!({"exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "/bin/false",
                        "interactiveMode": "Never",
                    }});
                })
            }),
        ),
        (
            "exec plugin that prints a token and fails",
            &["authenticate"],
            &["plugin-printed-token-8c1e", "exec-env-secret-3b7a"],
            Box::new(move |c, _| {
                let cmd = leaky_s.clone();
                kubeconfig_variant(c, |kc| {
                    kc["users"][0]["user"] = json!({"exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": cmd,
                        "env": [{"name": "PLUGIN_SECRET", "value": "exec-env-secret-3b7a"}],
                        "interactiveMode": "Never",
                    }});
                })
            }),
        ),
    ];

    // all runs at once: some of them may retry for a while
    let files = tempfile::tempdir().expect("dir");
    let mut runs = Vec::new();
    for (i, (kind, _, _, variant)) in cases.iter().enumerate() {
        // as the management cluster
        let kc = files.path().join(format!("mgmt-{i}.kubeconfig"));
        std::fs::write(&kc, variant(&mgmt_cluster, &worker)).expect("write");
        runs.push((
            *kind,
            "management",
            i,
            Instant::now(),
            Bg::spawn(&["list"], &kc, &[]),
        ));
        // as the runtime cluster, with a good management cluster
        let rname = format!("bad-{i}");
        let mut spec: Value =
            serde_json::from_str(&physical_spec(&rname, "worker", &worker, json!({})))
                .expect("spec");
        spec["kubeconfig"] = json!(variant(&worker, &mgmt_cluster));
        if *kind == "unreachable" {
            spec["api_server"] = json!(format!("https://127.0.0.1:{port}"));
        }
        let sp = files.path().join(format!("runtime-{i}.json"));
        std::fs::write(&sp, spec.to_string()).expect("write");
        runs.push((
            *kind,
            "runtime",
            i,
            Instant::now(),
            // the exec plugins are the point here: the user trusts this spec
            Bg::spawn(
                &[
                    "register",
                    "-f",
                    sp.to_str().expect("utf8"),
                    "--allow-exec-kubeconfig",
                ],
                &mgmt_kc,
                &[],
            ),
        ));
    }
    // wait for all, noting when each one ended
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut ended: Vec<Option<Duration>> = vec![None; runs.len()];
    while ended.iter().any(Option::is_none) && Instant::now() < deadline {
        for (n, (.., began, bg)) in runs.iter_mut().enumerate() {
            if ended[n].is_none() && !bg.running() {
                ended[n] = Some(began.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut failures = Vec::new();
    let mut timings = Vec::new();
    for ((kind, role, i, _, bg), took) in runs.into_iter().zip(ended) {
        let r = bg.finish(Duration::from_secs(1));
        let took = took.unwrap_or_default();
        if took > Duration::from_secs(15) {
            eprintln!(
                "NOTE: {role} cluster, {kind}: the error came only after {:.0}s (retried as if transient)",
                took.as_secs_f64()
            );
        }
        timings.push(format!(
            "{role} cluster, {kind}: exit {} after {:.1}s: {}",
            r.code,
            took.as_secs_f64(),
            r.stderr
                .lines()
                .filter(|l| !l.starts_with('['))
                .collect::<Vec<_>>()
                .join(" | ")
        ));
        let needles = cases[i].1;
        let mut problems = Vec::new();
        if r.code != 5 {
            problems.push(format!("exit code {} (want 5)", r.code));
        }
        if r.stderr.contains("panicked") {
            problems.push("panicked".into());
        }
        if role == "management" {
            let lines: Vec<&str> = r.stderr.lines().collect();
            if lines.len() != 1 || !lines[0].starts_with("error: management cluster") {
                problems
                    .push("stderr is not exactly one `error: management cluster...` line".into());
            }
        } else if let Some(at) = r.stderr.find("error: ") {
            let block = &r.stderr[at..];
            let mut lines = block.lines();
            let head = lines.next().unwrap_or_default();
            if head != "error: preflight failed, nothing was changed:" {
                problems.push(format!("unexpected error head {head:?}"));
            }
            let rest: Vec<&str> = lines.collect();
            if rest.is_empty() || !rest.iter().all(|l| l.starts_with("  ")) {
                problems.push("the error block's lines are not indented problems".into());
            }
            if !rest
                .iter()
                .any(|l| l.starts_with(&format!("  runtime cluster bad-{i}: ")))
            {
                problems.push(format!("no line names `runtime cluster bad-{i}`"));
            }
        } else {
            problems.push("no `error: ` line".into());
        }
        for secret in cases[i].2 {
            if r.stderr.contains(secret) || r.stdout.contains(secret) {
                problems.push(format!("the secret {secret:?} is printed"));
            }
        }
        let lower = r.stderr.to_lowercase();
        if !needles.iter().all(|n| lower.contains(&n.to_lowercase())) {
            problems.push(format!("the message does not say {needles:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{role} cluster, {kind}: {}\nstderr:\n{}",
                problems.join("; "),
                r.stderr
            ));
        }
    }
    eprintln!("{}", timings.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    eprintln!("[{:6.1}s] done", t0.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------
// 5: secrets never leave the clusters

/// What must never be printed, with a name for messages.
fn secrets_of_kubeconfig(kc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let user = &kc["users"][0]["user"];
    for key in ["client-key-data", "client-certificate-data"] {
        let b64 = user[key].as_str().expect("key data").to_string();
        // the PEM inside, line by line: a decoded copy must not leak either
        let pem = base64_decode(&b64);
        for (n, line) in pem.lines().enumerate() {
            if line.len() >= 40 && !line.starts_with("-----") {
                out.push((format!("{key} PEM line {n}"), line.to_string()));
            }
        }
        out.push((key.to_string(), b64));
    }
    out
}

/// Standard base64, decoded by hand (no new dependency for the tests).
fn base64_decode(s: &str) -> String {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn argocd_token(mgmt: &kube::Client, name: &str) -> String {
    let s = Api::<Secret>::namespaced(mgmt.clone(), "argocd")
        .get(&format!("cluster-{name}"))
        .await
        .expect("Argo CD cluster Secret");
    let config = s
        .data
        .as_ref()
        .and_then(|d| d.get("config"))
        .expect("config key");
    let v: Value = serde_json::from_slice(&config.0).expect("config JSON");
    v["bearerToken"].as_str().expect("bearerToken").to_string()
}

/// Every file under a directory, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.push(p.clone());
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// register, status, list, get -o yaml, diff and destroy at their most
/// verbose (-v -v with --progress json, plain and auto), on a spec whose
/// kubeconfig carries a client key and certificate and, as its token, the
/// very token Argo CD holds for the cluster: none of them, nor the Argo CD
/// token itself, appears in stdout or stderr; and no file appears in TMPDIR
/// (helm values go through stdin), also when a register is stopped by SIGINT
/// (exit code 130).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_output_or_temporary_files() {
    let t0 = Instant::now();
    let bed = TestBed::start(&["management", "worker"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let worker = bed.cluster("worker").clone();
    let mgmt = client(&mgmt_kc).await;
    let wc = client(&worker.kubeconfig).await;
    let name = "secretive";
    let tmp = tempfile::tempdir().expect("TMPDIR for the runs");
    let env = [("TMPDIR", tmp.path().as_os_str().to_os_string())];
    let kc_text = std::fs::read_to_string(&worker.kubeconfig).expect("kubeconfig");
    let kc: Value = serde_saphyr::from_str(&kc_text).expect("yaml");
    let mut secrets = secrets_of_kubeconfig(&kc);
    let mut outputs: Vec<(String, Run)> = Vec::new();
    let check_tmp = |what: &str| {
        let left = files_under(tmp.path());
        assert!(left.is_empty(), "{what} left files in TMPDIR: {left:#?}");
    };

    // 1. a first register, with the test bed's kubeconfig
    let (_d, plain_spec) = spec_file(name, &worker);
    let p = plain_spec.to_str().expect("utf8");
    let r = run(
        &["register", "-f", p, "-v", "-v", "--progress", "json"],
        Some(&mgmt_kc),
        &env,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    check_tmp("register");
    outputs.push(("register --progress json -v -v".into(), r));
    let token = argocd_token(&mgmt, name).await;
    secrets.push(("Argo CD token".into(), token.clone()));
    if let Some((_, sig)) = token.rsplit_once('.') {
        secrets.push(("Argo CD token signature".into(), sig.to_string()));
    }

    // 2. a spec whose kubeconfig carries the key, the cert and that token
    let mut kc2 = kc.clone();
    kc2["users"][0]["user"]["token"] = json!(token);
    let mut spec: Value =
        serde_json::from_str(&physical_spec(name, "worker", &worker, json!({}))).expect("spec");
    spec["kubeconfig"] = json!(kc2.to_string());
    let (_d2, spec2) = write_temp("spec-with-token.json", &spec.to_string());
    let s2 = spec2.to_str().expect("utf8");

    let modes: [(&str, &[&str]); 3] = [
        ("json", &["-v", "-v", "--progress", "json"]),
        ("plain", &["-v", "-v", "--progress", "plain"]),
        ("auto", &["-v", "-v"]),
    ];
    let commands: Vec<Vec<&str>> = vec![
        vec!["register", "-f", s2],
        vec!["status", name],
        vec!["status", name, "-o", "json"],
        vec!["list"],
        vec!["list", "-o", "json"],
        vec!["get", name, "-o", "yaml"],
        vec!["get", name, "-o", "json"],
        vec!["diff", "-f", s2],
        vec!["diff", "-f", s2, "-o", "yaml"],
        vec!["register", "-f", s2, "-o", "yaml"],
        vec!["register", "-f", s2, "--dry-run=server", "-o", "json"],
        vec!["register", "-f", s2, "--dry-run=client"],
    ];
    for (mode, flags) in modes {
        for c in &commands {
            let mut args = c.clone();
            args.extend_from_slice(flags);
            let r = run(&args, Some(&mgmt_kc), &env);
            assert_eq!(r.code, 0, "{}:\n{}", args.join(" "), r.stderr);
            check_tmp(&args.join(" "));
            outputs.push((format!("{} [{mode}]", c.join(" ")), r));
        }
    }
    eprintln!(
        "[{:6.1}s] {} runs",
        t0.elapsed().as_secs_f64(),
        outputs.len()
    );

    // 3. destroy, most verbose
    let r = run(
        &[
            "destroy",
            name,
            "-v",
            "-v",
            "--progress",
            "plain",
            "-o",
            "yaml",
        ],
        Some(&mgmt_kc),
        &env,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    check_tmp("destroy");
    outputs.push(("destroy --progress plain -v -v".into(), r));
    wait_nothing_left(&wc, name, "the worker").await;

    // 4. a register stopped by SIGINT while it applies: exit 130, no files
    let mut bg = Bg::spawn(
        &["register", "-f", s2, "-v", "-v", "--progress", "json"],
        &mgmt_kc,
        &env,
    );
    let pid = bg.pid();
    wait_for_namespace(&mut bg, &wc, "argocd").await;
    bg.signal("INT");
    let r = bg.finish(Duration::from_secs(60));
    assert_eq!(r.code, 130, "SIGINT mid-register:\n{}", r.stderr);
    assert!(r.stderr.contains("interrupted"), "{}", r.stderr);
    // helm children go with it (kill_on_drop): give them a moment
    std::thread::sleep(Duration::from_millis(500));
    check_tmp("a register stopped by SIGINT");
    outputs.push(("register stopped by SIGINT".into(), r));
    // not asserted: whether the interrupted run released its lock
    let re = run(
        &["register", "-f", s2, "--dry-run=server"],
        Some(&mgmt_kc),
        &env,
    );
    if re.code == 3 && re.stderr.contains(&format!("pid {pid}")) {
        eprintln!(
            "NOTE: a register stopped by SIGINT left its Lease held (a run right after it is refused: {})",
            re.stderr.trim()
        );
    }
    outputs.push(("register right after SIGINT".into(), re));

    // 5. register again (converges), then destroy, most verbose in json
    let mut r = until_unlocked(
        &["register", "-f", s2, "-v", "-v", "--progress", "json"],
        &mgmt_kc,
        &env,
    );
    // a SIGINT while kube-apiserver creates a NodePort Service can leave
    // its node port allocated with no Service holding it (an upstream leak
    // its repair loop frees within about 10 minutes; the kill tests above
    // meet it too): then, and only then, the re-run moves Traefik to other
    // node ports, still with the kubeconfig that carries the secrets
    let (_d3, spec3) = {
        let mut moved = spec.clone();
        moved["traefik"] = json!({"http_node_port": 30190, "https_node_port": 30553});
        write_temp("spec-moved.json", &moved.to_string())
    };
    if r.code == 7 && r.stderr.contains("provided port is already allocated") {
        eprintln!(
            "NOTE: the SIGINT leaked a node port in kube-apiserver; moving Traefik to 30190/30553"
        );
        outputs.push(("register after SIGINT, node port leaked".into(), r));
        r = until_unlocked(
            &[
                "register",
                "-f",
                spec3.to_str().expect("utf8"),
                "-v",
                "-v",
                "--progress",
                "json",
            ],
            &mgmt_kc,
            &env,
        );
    }
    assert_eq!(r.code, 0, "{}", r.stderr);
    check_tmp("register after SIGINT");
    outputs.push(("register after SIGINT".into(), r));
    let token2 = argocd_token(&mgmt, name).await;
    secrets.push(("second Argo CD token".into(), token2));
    let r = run(
        &[
            "destroy",
            name,
            "-v",
            "-v",
            "--progress",
            "json",
            "-o",
            "json",
        ],
        Some(&mgmt_kc),
        &env,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    check_tmp("destroy");
    outputs.push(("destroy --progress json -v -v".into(), r));

    let mut leaks = Vec::new();
    for (what, r) in &outputs {
        for (secret_name, secret) in &secrets {
            for (stream, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
                if text.contains(secret.as_str()) {
                    leaks.push(format!("{what}: {secret_name} in {stream}"));
                }
            }
        }
    }
    assert!(leaks.is_empty(), "secrets printed:\n{}", leaks.join("\n"));
    let total: usize = outputs
        .iter()
        .map(|(_, r)| r.stdout.len() + r.stderr.len())
        .sum();
    eprintln!(
        "[{:6.1}s] {} runs, {total} bytes of output checked for {} secrets",
        t0.elapsed().as_secs_f64(),
        outputs.len(),
        secrets.len()
    );
}
