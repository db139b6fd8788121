// Command nautes-testbed runs several independent, real Kubernetes control
// planes (etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
// kwok with one fake Node) side by side on 127.0.0.1 for the integration tests
// of kubectl-nautes, and removes every trace of them when it ends.
//
//	nautes-testbed up --bin DIR [--dir DIR] [--wait stdin|signal] [--timeout D] [--keep] NAME...
//	nautes-testbed down --dir DIR
//
// See testbed/README.md.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const usageText = `usage:
  nautes-testbed up --bin DIR [--dir DIR] [--wait stdin|signal] [--timeout DURATION] [--keep] NAME...
  nautes-testbed down --dir DIR

up starts one control plane per NAME, writes DIR/testbed.json, prints
"READY <path of testbed.json>" and waits: for stdin to reach EOF (--wait stdin,
the default; stdin also takes the commands "stop-apiserver NAME" and
"start-apiserver NAME") or for SIGTERM/SIGINT (--wait signal). Then it stops
every process and removes every file it created.

down sends SIGTERM to the launcher of DIR (DIR/launcher.pid) and waits until
it has cleaned up and exited.
`

var stderrMu sync.Mutex

// logf writes a diagnostic line to stderr.
func logf(format string, args ...any) {
	stderrMu.Lock()
	defer stderrMu.Unlock()
	fmt.Fprintf(os.Stderr, "nautes-testbed: "+format+"\n", args...)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usageText)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "up":
		os.Exit(runUp(os.Args[2:]))
	case "down":
		os.Exit(runDown(os.Args[2:]))
	case "mountns-exec": // internal: how the launcher starts a vcluster syncer
		os.Exit(runMountnsExec(os.Args[2:]))
	case "help", "-h", "-help", "--help":
		fmt.Print(usageText)
	default:
		fmt.Fprintf(os.Stderr, "nautes-testbed: unknown command %q\n%s", os.Args[1], usageText)
		os.Exit(2)
	}
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$`)

// launcher is one "up" run.
type launcher struct {
	bin        string
	dir        string
	createdDir bool // dir did not exist: remove it at cleanup
	keep       bool
	ports      portAllocator
	clusters   []*cluster
	byName     map[string]*cluster
	jsonPath   string
	pidPath    string
	// vcluster is the vcluster binary ("" when vclusters are not run) and
	// vclusterConfig the vcluster-config helper next to it.
	vcluster, vclusterConfig string

	stdoutMu sync.Mutex
	jsonMu   sync.Mutex
	lastJSON []byte
}

// reply writes one line on stdout. A closed stdout is not an error worth
// stopping for: stdin's EOF or a signal ends the run.
func (l *launcher) reply(format string, args ...any) {
	l.stdoutMu.Lock()
	defer l.stdoutMu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

func runUp(args []string) int {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usageText); fs.PrintDefaults() }
	bin := fs.String("bin", os.Getenv("NAUTES_TESTBED_BIN"), "directory holding etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (default $NAUTES_TESTBED_BIN)")
	dir := fs.String("dir", "", "directory for testbed.json, the kubeconfigs and the clusters' data (default: a new temporary directory)")
	wait := fs.String("wait", "stdin", "what ends the run: stdin (EOF on stdin) or signal (SIGTERM/SIGINT only)")
	timeout := fs.Duration("timeout", 3*time.Minute, "how long starting the clusters may take")
	keep := fs.Bool("keep", false, "keep the data directories and logs at exit (processes are still stopped)")
	vcluster := fs.String("vcluster", os.Getenv("NAUTES_TESTBED_VCLUSTER"), "the vcluster binary (what testbed/vcluster/build.sh prints; default $NAUTES_TESTBED_VCLUSTER), run for every vcluster release in a cluster; \"off\" or empty: none is run")
	names, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	fail := func(format string, args ...any) int {
		logf(format, args...)
		return 2
	}
	if *wait != "stdin" && *wait != "signal" {
		return fail("--wait must be stdin or signal, not %q", *wait)
	}
	if *bin == "" {
		return fail("--bin is required (the directory testbed/build.sh prints)")
	}
	if len(names) == 0 {
		return fail("no cluster NAME given")
	}
	seen := map[string]bool{}
	for _, n := range names {
		if !nameRE.MatchString(n) {
			return fail("invalid cluster name %q: use lower-case letters, digits and '-' (at most 40)", n)
		}
		if seen[n] {
			return fail("cluster name %q given twice", n)
		}
		seen[n] = true
	}
	l := &launcher{keep: *keep, byName: map[string]*cluster{}, ports: portAllocator{used: map[int]bool{}}}
	if l.bin, err = filepath.Abs(*bin); err != nil {
		return fail("%v", err)
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"} {
		if st, err := os.Stat(filepath.Join(l.bin, b)); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return fail("%s has no executable %s (build it with testbed/build.sh)", l.bin, b)
		}
	}

	if *vcluster != "" && *vcluster != "off" {
		if l.vcluster, err = filepath.Abs(*vcluster); err != nil {
			return fail("%v", err)
		}
		l.vclusterConfig = filepath.Join(filepath.Dir(l.vcluster), "vcluster-config")
		for _, b := range []string{l.vcluster, l.vclusterConfig} {
			if st, err := os.Stat(b); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
				return fail("--vcluster: %s is not an executable (build it with testbed/vcluster/build.sh)", b)
			}
		}
	}

	// Signals end the run in both modes; SIGPIPE (stdout closed by a parent
	// that died) must not kill the launcher before it cleans up.
	sigCh := make(chan os.Signal, 4)
	signal.Notify(sigCh, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	go func() {
		sig := <-sigCh
		cancel(fmt.Errorf("received %v", sig))
	}()

	if *dir == "" {
		if l.dir, err = os.MkdirTemp("", "nautes-testbed-"); err != nil {
			return fail("%v", err)
		}
		l.createdDir = true
	} else {
		if l.dir, err = filepath.Abs(*dir); err != nil {
			return fail("%v", err)
		}
		// Refuse to touch what another run owns, before creating anything.
		if pid, alive, _ := readLauncherPid(filepath.Join(l.dir, "launcher.pid")); alive {
			return fail("launcher %d already runs in %s", pid, l.dir)
		}
		for _, n := range names {
			for _, path := range []string{n, n + ".kubeconfig", n + "-restricted.kubeconfig"} {
				if _, err := os.Lstat(filepath.Join(l.dir, path)); err == nil {
					return fail("%s already exists; use another --dir or remove it", filepath.Join(l.dir, path))
				}
			}
		}
		if _, err := os.Stat(l.dir); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(l.dir, 0o755); err != nil {
				return fail("%v", err)
			}
			l.createdDir = true
		}
	}
	defer l.cleanup()
	l.jsonPath = filepath.Join(l.dir, "testbed.json")
	l.pidPath = filepath.Join(l.dir, "launcher.pid")
	if err := writeFileAtomic(l.pidPath, []byte(pidFileContent(os.Getpid())), 0o644); err != nil {
		logf("%v", err)
		return 1
	}
	for _, n := range names {
		c := &cluster{
			l:                    l,
			name:                 n,
			dir:                  filepath.Join(l.dir, n),
			kubeconfig:           filepath.Join(l.dir, n+".kubeconfig"),
			restrictedKubeconfig: filepath.Join(l.dir, n+"-restricted.kubeconfig"),
		}
		l.clusters = append(l.clusters, c)
		l.byName[n] = c
	}

	// In stdin mode, EOF ends the run at any time, also during start-up.
	var commands <-chan string
	if *wait == "stdin" {
		ch := make(chan string, 16)
		commands = ch
		go func() {
			sc := bufio.NewScanner(os.Stdin)
			for sc.Scan() {
				ch <- sc.Text()
			}
			cancel(errors.New("stdin closed"))
		}()
	}

	// Start every cluster at once.
	began := time.Now()
	startCtx, startCancel := context.WithTimeoutCause(ctx, *timeout, fmt.Errorf("start-up took longer than --timeout=%v", *timeout))
	defer startCancel()
	errs := make([]error, len(l.clusters))
	var wg sync.WaitGroup
	for i, c := range l.clusters {
		wg.Go(func() {
			errs[i] = c.start(startCtx)
			if errs[i] != nil {
				startCancel() // no use waiting for the others
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		logf("start-up interrupted: %v", context.Cause(ctx))
		return 1
	}
	failed := false
	for _, err := range errs {
		var se *startError
		if err == nil || (errors.As(err, &se) && errors.Is(context.Cause(startCtx), context.Canceled) && strings.HasPrefix(se.msg, "gave up")) {
			continue // a bystander stopped because another cluster failed
		}
		failed = true
		logf("%v", err)
		if errors.As(err, &se) && se.proc != nil {
			stderrMu.Lock()
			fmt.Fprintf(os.Stderr, "--- last 30 lines of %s ---\n%s---\n", se.proc.logPath, se.proc.logTail(30))
			stderrMu.Unlock()
		}
	}
	if failed {
		return 1
	}
	if err := l.writeTestbedJSON(); err != nil {
		logf("%v", err)
		return 1
	}
	var times []string
	for _, c := range l.clusters {
		times = append(times, fmt.Sprintf("%s %.1fs", c.name, c.readyAfter.Seconds()))
	}
	logf("ready after %.1fs (%s)", time.Since(began).Seconds(), strings.Join(times, ", "))
	reportExits.Store(true)
	if l.vcluster != "" {
		for _, c := range l.clusters {
			c.vcs = &vcManager{host: c, bin: l.vcluster, configTool: l.vclusterConfig, vcs: map[string]*virtualCluster{}}
			go c.vcs.run(ctx)
		}
	} else {
		logf("vclusters are not run (no --vcluster): a vcluster release stays a StatefulSet whose Pod kwok fakes")
	}
	l.reply("READY %s", l.jsonPath)

	for {
		select {
		case <-ctx.Done():
			logf("stopping: %v", context.Cause(ctx))
			return 0
		case line := <-commands:
			l.command(ctx, line)
		}
	}
}

// command runs one stdin command and replies with OK or ERR.
func (l *launcher) command(ctx context.Context, line string) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return
	}
	cmdName := fields[0]
	if cmdName == "stop-vcluster" {
		l.stopVcluster(fields[1:])
		return
	}
	if cmdName != "stop-apiserver" && cmdName != "start-apiserver" {
		l.reply("ERR unknown command %q (known: stop-apiserver NAME, start-apiserver NAME, stop-vcluster NAME NAMESPACE/RELEASE)", cmdName)
		return
	}
	if len(fields) != 2 {
		l.reply("ERR usage: %s NAME", cmdName)
		return
	}
	c := l.byName[fields[1]]
	if c == nil {
		l.reply("ERR no cluster named %q", fields[1])
		return
	}
	var err error
	if cmdName == "stop-apiserver" {
		err = c.stopAPIServer()
	} else {
		err = c.startAPIServer(ctx)
		if err != nil {
			var se *startError
			if errors.As(err, &se) && se.proc != nil {
				stderrMu.Lock()
				fmt.Fprintf(os.Stderr, "--- last 30 lines of %s ---\n%s---\n", se.proc.logPath, se.proc.logTail(30))
				stderrMu.Unlock()
			}
		}
	}
	if err != nil {
		l.reply("ERR %s", strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	l.updateJSON() // the pids changed
	l.reply("OK")
}

// stopVcluster runs "stop-vcluster NAME NAMESPACE/RELEASE": stops the
// processes of that vcluster (its API goes away) while its release stays.
func (l *launcher) stopVcluster(args []string) {
	if len(args) != 2 {
		l.reply("ERR usage: stop-vcluster NAME NAMESPACE/RELEASE")
		return
	}
	c := l.byName[args[0]]
	if c == nil {
		l.reply("ERR no cluster named %q", args[0])
		return
	}
	if c.vcs == nil {
		l.reply("ERR vclusters are not run (no --vcluster)")
		return
	}
	if err := c.vcs.stopOne(args[1]); err != nil {
		l.reply("ERR %v", err)
		return
	}
	l.updateJSON()
	l.reply("OK")
}

type clusterInfo struct {
	Kubeconfig           string         `json:"kubeconfig"`
	RestrictedKubeconfig string         `json:"restricted_kubeconfig"`
	Server               string         `json:"server"`
	Etcd                 string         `json:"etcd"`
	CAFile               string         `json:"ca_file"`
	Dir                  string         `json:"dir"`
	Node                 string         `json:"node"`
	ReadySeconds         float64        `json:"ready_seconds"`
	Pids                 map[string]int `json:"pids"`
	// The vclusters run for the releases in this cluster, by "namespace/name".
	Vclusters map[string]vclusterInfo `json:"vclusters"`
}

type testbedInfo struct {
	LauncherPid int                    `json:"launcher_pid"`
	Clusters    map[string]clusterInfo `json:"clusters"`
}

// updateJSON rewrites testbed.json when its content changed, reporting a
// failure on stderr.
func (l *launcher) updateJSON() {
	if err := l.writeTestbedJSON(); err != nil {
		logf("%v", err)
	}
}

func (l *launcher) writeTestbedJSON() error {
	l.jsonMu.Lock()
	defer l.jsonMu.Unlock()
	info := testbedInfo{LauncherPid: os.Getpid(), Clusters: map[string]clusterInfo{}}
	for _, c := range l.clusters {
		pids := map[string]int{}
		for _, p := range c.procs() {
			pids[p.name] = p.pid() // 0 while stopped
		}
		info.Clusters[c.name] = clusterInfo{
			Kubeconfig:           c.kubeconfig,
			RestrictedKubeconfig: c.restrictedKubeconfig,
			Server:               c.server(),
			Etcd:                 c.etcdURL(),
			CAFile:               c.pki.caFile,
			Dir:                  c.dir,
			Node:                 nodeName,
			ReadySeconds:         float64(c.readyAfter.Milliseconds()) / 1000,
			Pids:                 pids,
			Vclusters:            c.vcs.info(),
		}
	}
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	if bytes.Equal(data, l.lastJSON) {
		return nil
	}
	if err := writeFileAtomic(l.jsonPath, append(data, '\n'), 0o644); err != nil {
		return err
	}
	l.lastJSON = data
	return nil
}

// cleanup stops every process and removes every file the run created.
func (l *launcher) cleanup() {
	// The API servers shut down gracefully in about a second while their etcd
	// runs, but hang until killed without it: etcd goes last.
	// The vclusters first: their syncers talk to their hosts.
	var wg sync.WaitGroup
	for _, c := range l.clusters {
		if c.vcs != nil {
			wg.Go(c.vcs.stopAll)
		}
	}
	wg.Wait()
	var procs, etcds []*proc
	for _, c := range l.clusters {
		for _, p := range c.procs() {
			if p == c.etcd {
				etcds = append(etcds, p)
			} else {
				procs = append(procs, p)
			}
		}
	}
	began := time.Now()
	stopProcs(procs, 3*time.Second)
	stopProcs(etcds, 3*time.Second)
	if len(etcds) > 0 {
		logf("processes stopped in %.1fs", time.Since(began).Seconds())
	}
	if l.keep {
		logf("--keep: leaving %s", l.dir)
		return
	}
	for _, c := range l.clusters {
		for _, path := range []string{c.dir, c.kubeconfig, c.restrictedKubeconfig} {
			if err := os.RemoveAll(path); err != nil {
				logf("cleanup: %v", err)
			}
		}
	}
	for _, path := range []string{l.jsonPath, l.pidPath} {
		if path != "" {
			_ = os.Remove(path)
		}
	}
	if l.createdDir {
		if err := os.Remove(l.dir); err != nil {
			logf("cleanup: %v", err)
		}
	}
}

// pidFileContent is "PID STARTTIME": the start time (in clock ticks since
// boot, from /proc) tells a live launcher from another process that got its
// pid later.
func pidFileContent(pid int) string {
	return fmt.Sprintf("%d %s\n", pid, procStartTime(pid))
}

func procStartTime(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name (field 2) may contain spaces; it ends at the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); the start time is field 22.
	if len(fields) < 20 {
		return ""
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return "" // exited, waiting to be reaped
	}
	return fields[19]
}

func runDown(args []string) int {
	fs := flag.NewFlagSet("down", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	dir := fs.String("dir", "", "the --dir given to up")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the launcher to exit")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if *dir == "" || len(rest) != 0 {
		logf("usage: nautes-testbed down --dir DIR")
		return 2
	}
	pidPath := filepath.Join(*dir, "launcher.pid")
	pid, alive, err := readLauncherPid(pidPath)
	if errors.Is(err, os.ErrNotExist) {
		logf("%s does not exist: no launcher running there", pidPath)
		return 0
	}
	if err != nil {
		logf("%v", err)
		return 1
	}
	if !alive {
		logf("launcher %d is not running", pid)
		return 0
	}
	started := procStartTime(pid)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		logf("kill %d: %v", pid, err)
		return 1
	}
	deadline := time.Now().Add(*timeout)
	for {
		// Gone, or a zombie: it has finished its cleanup either way.
		if procStartTime(pid) != started {
			return 0
		}
		if time.Now().After(deadline) {
			logf("launcher %d still running after %v", pid, *timeout)
			return 1
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readLauncherPid reads a launcher.pid file and tells whether that launcher
// still runs. A removed file (the launcher cleaned up) means it does not.
func readLauncherPid(path string) (pid int, alive bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false, err
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return 0, false, fmt.Errorf("%s: empty", path)
	}
	if pid, err = strconv.Atoi(fields[0]); err != nil || pid <= 1 {
		return 0, false, fmt.Errorf("%s: bad content %q", path, data)
	}
	st := procStartTime(pid)
	return pid, st != "" && (len(fields) < 2 || st == fields[1]), nil
}
