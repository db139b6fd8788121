package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// proc is one child process (etcd, kube-apiserver, ...) of one cluster. It can
// be started again with the same arguments after it stopped.
type proc struct {
	cluster string
	name    string
	path    string
	args    []string
	logPath string
	// env is added to the launcher's environment (a later entry wins).
	env []string
	// newMountNS starts the process in a mount namespace of its own.
	newMountNS bool
	// onExit, when set, is called (in its own goroutine) after an exit the
	// launcher did not cause, instead of reporting it.
	onExit func(err error)

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when the current process has been reaped
	waitErr  error
	expected bool // the launcher killed it, so its exit is no news
}

// The children are started with Pdeathsig, which the kernel sends when the
// *thread* that forked them exits. Go may end an OS thread when a goroutine
// locked to it returns, so every child is forked from one goroutine that locks
// its thread and never returns.
type spawnRequest struct {
	cmd   *exec.Cmd
	reply chan error
}

var spawnCh = make(chan spawnRequest)

// reportExits is set once the clusters are ready: from then on an exit the
// launcher did not cause is reported on stderr (before, start-up fails).
var reportExits atomic.Bool

func init() {
	go func() {
		runtime.LockOSThread()
		for req := range spawnCh {
			req.reply <- req.cmd.Start()
		}
	}()
}

// childEnv is the launcher's environment without proxy settings: every child
// talks to 127.0.0.1 only.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// start starts the process; its output is appended to its log file.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !p.exitedLocked() {
		return fmt.Errorf("%s is already running", p.name)
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own copy
	fmt.Fprintf(logFile, "=== nautes-testbed %s: %s %s\n", time.Now().Format(time.RFC3339Nano), p.path, strings.Join(p.args, " "))
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = append(childEnv(), p.env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if p.newMountNS {
		cmd.SysProcAttr.Unshareflags = syscall.CLONE_NEWNS
	}
	reply := make(chan error)
	spawnCh <- spawnRequest{cmd, reply}
	if err := <-reply; err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.waitErr, p.expected = cmd, done, nil, false
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		expected := p.expected
		p.mu.Unlock()
		close(done)
		if !expected && p.onExit != nil {
			p.onExit(err)
		} else if !expected && reportExits.Load() {
			logf("%s/%s (pid %d) exited unexpectedly (%s); log: %s", p.cluster, p.name, cmd.Process.Pid, exitError(err), p.logPath)
		}
	}()
	return nil
}

func (p *proc) exitedLocked() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exited reports whether the process was started and has exited, and how.
func (p *proc) exited() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || !p.exitedLocked() {
		return false, nil
	}
	return true, p.waitErr
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !p.exitedLocked()
}

func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.exitedLocked() {
		return 0
	}
	return p.cmd.Process.Pid
}

// signal sends sig to the process group of the process, marking the exit as
// expected. It returns the channel closed once the process is reaped, or nil
// when it was never started.
func (p *proc) signal(sig syscall.Signal) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	p.expected = true
	// Only while the leader is not reaped: its pid, hence the group id, cannot
	// have been reused by then.
	if !p.exitedLocked() {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
	return p.done
}

// stopProcs stops processes: SIGTERM to every process group, SIGKILL to those
// still alive after grace, then waits until all are reaped.
func stopProcs(procs []*proc, grace time.Duration) {
	var dones []<-chan struct{}
	var left []*proc
	for _, p := range procs {
		if d := p.signal(syscall.SIGTERM); d != nil {
			dones = append(dones, d)
			left = append(left, p)
		}
	}
	deadline := time.After(grace)
	for i, d := range dones {
		select {
		case <-d:
		case <-deadline:
			for _, q := range left[i:] {
				if q.running() && grace > 0 {
					logf("%s/%s did not stop within %v of SIGTERM: SIGKILL", q.cluster, q.name, grace)
				}
				q.signal(syscall.SIGKILL)
			}
			<-d
		}
	}
}

// logTail returns the last n lines of the process's log.
func (p *proc) logTail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)\n", p.logPath, err)
	}
	data = bytes.TrimRight(data, "\n")
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n"))) + "\n"
}

// logContains reports whether the process's log contains s.
func (p *proc) logContains(s string) bool {
	data, err := os.ReadFile(p.logPath)
	return err == nil && bytes.Contains(data, []byte(s))
}

// exitError describes how a process ended.
func exitError(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by " + ws.Signal().String()
		}
		return fmt.Sprintf("exit status %d", ee.ExitCode())
	}
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
