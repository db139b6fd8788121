package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// A /16: a vcluster copies its host's Service IPs into its virtual
	// cluster, whose API server uses this range too; in a /24 the IP of its
	// CoreDNS Service collides with a copied one now and then.
	serviceCIDR = "10.0.0.0/16"
	serviceIP   = "10.0.0.1"
	podCIDR     = "10.244.0.0/16"
	nodeIP      = "10.240.0.10"
	nodeName    = "kwok-node-0"
	saIssuer    = "https://kubernetes.default.svc"
)

// cluster is one control plane: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok, with one fake Node.
type cluster struct {
	l    *launcher
	name string
	dir  string // data directory, removed at cleanup

	kubeconfig           string
	restrictedKubeconfig string

	etcdPort, etcdPeerPort, apiPort int
	pki                             *clusterPKI
	client                          *http.Client

	etcd, apiserver, controller, scheduler, kwok *proc

	readyAfter time.Duration

	vcs *vcManager // nil when vclusters are not run
}

func (c *cluster) server() string { return "https://127.0.0.1:" + strconv.Itoa(c.apiPort) }
func (c *cluster) etcdURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(c.etcdPort)
}

func (c *cluster) procs() []*proc {
	var ps []*proc
	for _, p := range []*proc{c.kwok, c.scheduler, c.controller, c.apiserver, c.etcd} {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// startError is a failure to start a cluster, blaming one process (whose log
// tail is shown) when one is known.
type startError struct {
	cluster string
	proc    *proc
	msg     string
	retry   bool // a port was taken: worth another attempt with other ports
}

func (e *startError) Error() string { return "cluster " + e.cluster + ": " + e.msg }

// start brings the cluster up, retrying with other ports when a port turned
// out to be taken.
func (c *cluster) start(ctx context.Context) error {
	began := time.Now()
	const attempts = 3
	for i := 1; ; i++ {
		err := c.startOnce(ctx)
		if err == nil {
			c.readyAfter = time.Since(began)
			return nil
		}
		var se *startError
		if i == attempts || !errors.As(err, &se) || !se.retry || ctx.Err() != nil {
			return err
		}
		logf("%v; retrying with other ports", err)
		stopProcs(c.procs(), 0)
		if err := os.RemoveAll(c.dir); err != nil {
			return err
		}
		c.etcd, c.apiserver, c.controller, c.scheduler, c.kwok = nil, nil, nil, nil, nil
	}
}

func (c *cluster) startOnce(ctx context.Context) error {
	fail := func(p *proc, format string, args ...any) error {
		return &startError{cluster: c.name, proc: p, msg: fmt.Sprintf(format, args...)}
	}
	logDir := filepath.Join(c.dir, "logs")
	pkiDir := filepath.Join(c.dir, "pki")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fail(nil, "%v", err)
	}
	var err error
	for _, port := range []*int{&c.etcdPort, &c.etcdPeerPort, &c.apiPort} {
		if *port, err = c.l.ports.get(); err != nil {
			return fail(nil, "%v", err)
		}
	}
	if c.pki, err = newClusterPKI(c.name); err != nil {
		return fail(nil, "%v", err)
	}
	if err := c.pki.writeFiles(pkiDir); err != nil {
		return fail(nil, "%v", err)
	}
	c.client = &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			TLSClientConfig:     c.pki.adminTLS(),
			DisableCompression:  true,
			MaxIdleConnsPerHost: 2,
		},
	}

	// Kubeconfigs: the two for the tests next to testbed.json, the components'
	// own in the data directory.
	ca := c.pki.ca.certPEM
	kcs := []struct {
		path string
		kc   kubeconfig
	}{
		{c.kubeconfig, kubeconfig{cluster: c.name, user: c.name, context: c.name, client: c.pki.admin}},
		{c.restrictedKubeconfig, kubeconfig{cluster: c.name, user: c.name + "-restricted", context: c.name + "-restricted", client: c.pki.restricted}},
		{filepath.Join(c.dir, "controller-manager.kubeconfig"), kubeconfig{cluster: c.name, user: "kube-controller-manager", context: c.name, client: c.pki.controller}},
		{filepath.Join(c.dir, "scheduler.kubeconfig"), kubeconfig{cluster: c.name, user: "kube-scheduler", context: c.name, client: c.pki.scheduler}},
	}
	for _, k := range kcs {
		k.kc.server, k.kc.ca = c.server(), ca
		if err := k.kc.write(k.path); err != nil {
			return fail(nil, "%v", err)
		}
	}
	kwokConfig := filepath.Join(c.dir, "kwok.yaml")
	if err := os.WriteFile(kwokConfig, []byte(kwokStages), 0o644); err != nil {
		return fail(nil, "%v", err)
	}

	newProc := func(name string, args ...string) *proc {
		return &proc{
			cluster: c.name,
			name:    name,
			path:    filepath.Join(c.l.bin, name),
			args:    args,
			logPath: filepath.Join(logDir, name+".log"),
		}
	}
	peerURL := "http://127.0.0.1:" + strconv.Itoa(c.etcdPeerPort)
	// A member name no other etcd has: the health check makes sure it talks to
	// this etcd, not to one another launcher started on a port we also chose.
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	etcdName := c.name + "-" + hex.EncodeToString(nonce[:])
	c.etcd = newProc("etcd",
		"--name="+etcdName,
		"--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+c.etcdURL(),
		"--advertise-client-urls="+c.etcdURL(),
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster="+etcdName+"="+peerURL,
		"--initial-cluster-state=new",
		"--initial-cluster-token=nautes-testbed-"+c.name,
		"--unsafe-no-fsync=true",
		"--quota-backend-bytes="+strconv.Itoa(512<<20),
		// A single member elects itself after one election timeout: keep it
		// short (the default, 1 s, would cost 1-2 s per cluster).
		"--heartbeat-interval=10",
		"--election-timeout=50",
		"--snapshot-count=10000",
		"--log-level=warn",
	)
	c.apiserver = newProc("kube-apiserver",
		"--etcd-servers="+c.etcdURL(),
		"--secure-port="+strconv.Itoa(c.apiPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--cert-dir="+pkiDir,
		"--tls-cert-file="+c.pki.servingCertFile,
		"--tls-private-key-file="+c.pki.servingKeyFile,
		"--client-ca-file="+c.pki.caFile,
		"--authorization-mode=Node,RBAC",
		"--service-cluster-ip-range="+serviceCIDR,
		"--allow-privileged=true",
		"--service-account-issuer="+saIssuer,
		"--service-account-key-file="+c.pki.saPubFile,
		"--service-account-signing-key-file="+c.pki.saKeyFile,
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	)
	c.controller = newProc("kube-controller-manager",
		"--kubeconfig="+kcs[2].path,
		"--root-ca-file="+c.pki.caFile,
		"--service-account-private-key-file="+c.pki.saKeyFile,
		"--cluster-signing-cert-file="+c.pki.caFile,
		"--cluster-signing-key-file="+c.pki.caKeyFile,
		"--use-service-account-credentials=true",
		"--controllers=*",
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--profiling=false",
		// The default client rate limit (20 qps) throttles the start-up, when
		// every controller gets its service account and token.
		"--kube-api-qps=1000",
		"--kube-api-burst=1000",
	)
	c.scheduler = newProc("kube-scheduler",
		"--kubeconfig="+kcs[3].path,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--profiling=false",
	)
	c.kwok = newProc("kwok",
		"--kubeconfig="+c.kubeconfig,
		"--config="+kwokConfig,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-lease-duration-seconds=40",
		"--node-ip="+nodeIP,
		"--cidr="+podCIDR,
	)

	// etcd, then the API server once etcd answers.
	if err := c.etcd.start(); err != nil {
		return fail(c.etcd, "%v", err)
	}
	etcdHealth := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	etcdGet := func(method, path string) []byte {
		req, _ := http.NewRequestWithContext(ctx, method, c.etcdURL()+path, strings.NewReader("{}"))
		resp, err := etcdHealth.Do(req)
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return nil
		}
		return body
	}
	err = c.waitFor(ctx, "etcd to be healthy", c.etcd, []*proc{c.etcd}, func() bool {
		if !bytes.Contains(etcdGet(http.MethodGet, "/health"), []byte(`"health":"true"`)) {
			return false
		}
		var members struct {
			Members []struct {
				Name string `json:"name"`
			} `json:"members"`
		}
		if json.Unmarshal(etcdGet(http.MethodPost, "/v3/cluster/member/list"), &members) != nil {
			return false
		}
		return len(members.Members) == 1 && members.Members[0].Name == etcdName
	})
	etcdHealth.CloseIdleConnections()
	if err != nil {
		return err
	}
	if err := c.apiserver.start(); err != nil {
		return fail(c.apiserver, "%v", err)
	}
	if err := c.waitReadyz(ctx); err != nil {
		return err
	}

	// The rest need a serving API server.
	for _, p := range []*proc{c.controller, c.scheduler, c.kwok} {
		if err := p.start(); err != nil {
			return fail(p, "%v", err)
		}
	}
	all := c.procs()
	if err := c.waitFor(ctx, "the Node to be created", c.apiserver, all, c.createNode); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "the Node to be Ready without taints", c.kwok, all, c.nodeReady); err != nil {
		return err
	}
	return c.waitFor(ctx, "the default ServiceAccount", c.controller, all, func() bool {
		code, _, err := c.do(ctx, http.MethodGet, "/api/v1/namespaces/default/serviceaccounts/default", nil)
		return err == nil && code == http.StatusOK
	})
}

// waitReadyz waits until the API server's /readyz answers 200.
func (c *cluster) waitReadyz(ctx context.Context) error {
	return c.waitFor(ctx, "kube-apiserver /readyz", c.apiserver, []*proc{c.etcd, c.apiserver}, func() bool {
		code, _, err := c.do(ctx, http.MethodGet, "/readyz", nil)
		return err == nil && code == http.StatusOK
	})
}

// waitFor polls check until it holds. It fails when one of the watched
// processes exits, or when ctx ends, blaming the given process.
func (c *cluster) waitFor(ctx context.Context, what string, blame *proc, watch []*proc, check func() bool) error {
	delay := 20 * time.Millisecond
	for {
		if check() {
			return nil
		}
		for _, p := range watch {
			if exited, err := p.exited(); exited {
				return &startError{
					cluster: c.name,
					proc:    p,
					msg:     fmt.Sprintf("%s exited (%s) while waiting for %s", p.name, exitError(err), what),
					retry:   p.logContains("address already in use"),
				}
			}
		}
		select {
		case <-ctx.Done():
			return &startError{cluster: c.name, proc: blame, msg: fmt.Sprintf("gave up waiting for %s: %v", what, context.Cause(ctx))}
		case <-time.After(delay):
		}
		delay = min(delay*2, 200*time.Millisecond)
	}
}

// do sends one request as the admin user.
func (c *cluster) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server()+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

func (c *cluster) createNode() bool {
	quantities := map[string]string{"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}
	node := map[string]any{
		"apiVersion": "v1",
		"kind":       "Node",
		"metadata": map[string]any{
			"name":        nodeName,
			"annotations": map[string]string{"kwok.x-k8s.io/node": "fake"},
			"labels": map[string]string{
				"type":                   "kwok",
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"kubernetes.io/hostname": nodeName,
			},
		},
		"spec": map[string]any{},
		"status": map[string]any{
			"allocatable": quantities,
			"capacity":    quantities,
			"nodeInfo": map[string]string{
				"architecture":            "amd64",
				"operatingSystem":         "linux",
				"kubeletVersion":          "v1.36.3",
				"kubeProxyVersion":        "v1.36.3",
				"containerRuntimeVersion": "kwok",
				"kernelVersion":           "kwok",
				"osImage":                 "kwok",
				"machineID":               "",
				"systemUUID":              "",
				"bootID":                  "",
			},
		},
	}
	body, _ := json.Marshal(node)
	code, _, err := c.do(context.Background(), http.MethodPost, "/api/v1/nodes", body)
	return err == nil && (code == http.StatusCreated || code == http.StatusConflict)
}

func (c *cluster) nodeReady() bool {
	code, data, err := c.do(context.Background(), http.MethodGet, "/api/v1/nodes/"+nodeName, nil)
	if err != nil || code != http.StatusOK {
		return false
	}
	var node struct {
		Spec struct {
			Taints []struct {
				Key    string `json:"key"`
				Effect string `json:"effect"`
			} `json:"taints"`
		} `json:"spec"`
		Status struct {
			Conditions []struct {
				Type   string `json:"type"`
				Status string `json:"status"`
			} `json:"conditions"`
		} `json:"status"`
	}
	if json.Unmarshal(data, &node) != nil || len(node.Spec.Taints) > 0 {
		return false
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == "Ready" {
			return cond.Status == "True"
		}
	}
	return false
}

// stopAPIServer kills the API server (SIGKILL) and waits until it is gone.
func (c *cluster) stopAPIServer() error {
	if !c.apiserver.running() {
		return fmt.Errorf("kube-apiserver of %s is not running", c.name)
	}
	if done := c.apiserver.signal(9); done != nil {
		<-done
	}
	c.client.CloseIdleConnections()
	return nil
}

// startAPIServer starts the API server again, same flags and port, and waits
// for /readyz.
func (c *cluster) startAPIServer(ctx context.Context) error {
	if c.apiserver.running() {
		return fmt.Errorf("kube-apiserver of %s is already running", c.name)
	}
	if err := c.apiserver.start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return c.waitReadyz(ctx)
}

// portAllocator hands out free 127.0.0.1 ports, never the same one twice in
// this process.
type portAllocator struct {
	mu   sync.Mutex
	used map[int]bool
}

func (a *portAllocator) get() (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !a.used[port] {
			a.used[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no free port found")
}
