package main

// Real vclusters on the test bed. A vcluster release in a test-bed cluster
// (its chart's Secret vc-config-<name> and StatefulSet <name>) cannot run as
// the chart means it to: kwok runs no container. So the launcher runs it as
// processes beside the cluster, the way the chart's Pod would run it:
//
//   - a virtual control plane from the test bed's own binaries: etcd (TLS,
//     client certificates required), kube-apiserver (the HOST's service CIDR,
//     --endpoint-reconciler-type=none) and kube-controller-manager with the
//     controller set vcluster runs; no scheduler (the host schedules);
//   - the unmodified vcluster syncer, `vcluster start --config FILE`, where
//     FILE is the chart's config (given the upstream chart's defaults by
//     vcluster-config) with the overrides of vclusterOverrides: its own
//     control plane off, the external etcd above, the kubeconfig and CAs of
//     that control plane, a proxy address of its own;
//   - a TCP forwarder on 127.0.0.1:<node port> for every NodePort Service of
//     the release, to the syncer's proxy: what the host's NodePort would do on
//     a real cluster.
//
// The syncer always listens on localhost:10099, so each one runs in a mount
// namespace of its own whose /etc/hosts maps localhost to a loopback address
// of its own (mountns-exec). It writes $HOME/.kube/config: it gets a HOME of
// its own. A syncer that dies is restarted (and reported); all processes go
// when the release goes (the Secret or the StatefulSet is deleted).

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The controllers vcluster's own kube-controller-manager runs.
const vclusterControllers = "*,-nodeipam,-nodelifecycle,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-cloud-node-lifecycle,-ttl"

// The service-account issuer vcluster gives its API server.
const vclusterSAIssuer = "https://kubernetes.default.svc.cluster.local"

// How often the launcher looks for vcluster releases.
const vclusterPoll = 500 * time.Millisecond

// vcManager runs the vclusters of one test-bed cluster (their host).
type vcManager struct {
	host       *cluster
	bin        string // the vcluster binary
	configTool string // vcluster-config, next to it

	mu      sync.Mutex
	vcs     map[string]*virtualCluster // by "namespace/name"
	serial  int
	stopped bool
}

// virtualCluster is one vcluster release and the processes run for it.
type virtualCluster struct {
	m        *vcManager
	ns, name string
	dir      string
	ctx      context.Context
	cancel   context.CancelFunc

	configHash string
	configYAML []byte
	appliedAt  time.Time // creation of Secret vc-config-<name>

	ip                                         string // the syncer's loopback address
	etcdPort, etcdPeerPort, apiPort, proxyPort int
	pki                                        *clusterPKI
	client                                     *http.Client

	mu                                  sync.Mutex
	etcd, apiserver, controller, syncer *proc
	syncerStarted                       time.Time
	restarts                            int
	secretAfter                         time.Duration // vc-config to vc-<name>, 0 until seen
	forwards                            map[int]net.Listener
	forwardFailed                       map[int]bool
	state                               string
}

func (m *vcManager) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(vclusterPoll):
		}
		m.reconcile(ctx)
	}
}

type objectMeta struct {
	Name              string            `json:"name"`
	Namespace         string            `json:"namespace"`
	CreationTimestamp time.Time         `json:"creationTimestamp"`
	DeletionTimestamp *time.Time        `json:"deletionTimestamp"`
	Labels            map[string]string `json:"labels"`
}

// list GETs a list from the host and decodes its items.
func (m *vcManager) list(ctx context.Context, path string, items any) error {
	code, data, err := m.host.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", path, code)
	}
	return json.Unmarshal(data, &struct {
		Items any `json:"items"`
	}{items})
}

// reconcile starts the vclusters of new releases, stops those of removed
// ones, restarts a syncer whose config changed and follows the node ports.
// A failed request changes nothing (the host's API server may be stopped).
func (m *vcManager) reconcile(ctx context.Context) {
	var secrets []struct {
		Metadata objectMeta        `json:"metadata"`
		Data     map[string]string `json:"data"`
	}
	// Opaque only: Helm's release Secrets are large and of another type.
	if err := m.list(ctx, "/api/v1/secrets?fieldSelector="+url.QueryEscape("type=Opaque"), &secrets); err != nil {
		return
	}
	var sets []struct {
		Metadata objectMeta `json:"metadata"`
	}
	if err := m.list(ctx, "/apis/apps/v1/statefulsets", &sets); err != nil {
		return
	}
	haveSet := map[string]bool{}
	for _, s := range sets {
		if s.Metadata.DeletionTimestamp == nil {
			haveSet[s.Metadata.Namespace+"/"+s.Metadata.Name] = true
		}
	}
	type release struct {
		ns, name  string
		config    []byte
		appliedAt time.Time
	}
	want := map[string]release{}
	for _, s := range secrets {
		name, ok := strings.CutPrefix(s.Metadata.Name, "vc-config-")
		key := s.Metadata.Namespace + "/" + name
		if !ok || name == "" || s.Metadata.DeletionTimestamp != nil || !haveSet[key] {
			continue
		}
		config, err := base64.StdEncoding.DecodeString(s.Data["config.yaml"])
		if err != nil || len(config) == 0 {
			continue
		}
		want[key] = release{s.Metadata.Namespace, name, config, s.Metadata.CreationTimestamp}
	}

	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return
	}
	var gone, changed, all []*virtualCluster
	for key, vc := range m.vcs {
		r, ok := want[key]
		if !ok {
			gone = append(gone, vc)
			delete(m.vcs, key)
			continue
		}
		if h := hashOf(r.config); h != vc.configHash {
			vc.mu.Lock()
			vc.configHash, vc.configYAML = h, r.config
			vc.mu.Unlock()
			changed = append(changed, vc)
		}
		all = append(all, vc)
	}
	for key, r := range want {
		if m.vcs[key] != nil {
			continue
		}
		m.serial++
		vc := &virtualCluster{
			m:             m,
			ns:            r.ns,
			name:          r.name,
			dir:           filepath.Join(m.host.dir, "vclusters", fmt.Sprintf("%s-%s-%d", r.ns, r.name, m.serial)),
			configHash:    hashOf(r.config),
			configYAML:    r.config,
			appliedAt:     r.appliedAt,
			forwards:      map[int]net.Listener{},
			forwardFailed: map[int]bool{},
			state:         "starting",
		}
		vc.ctx, vc.cancel = context.WithCancel(ctx)
		m.vcs[key] = vc
		logf("%s: vcluster release %s appeared: starting its virtual control plane and syncer", m.host.name, key)
		go vc.run()
	}
	m.mu.Unlock()

	for _, vc := range gone {
		logf("%s: vcluster release %s/%s removed: stopping it", m.host.name, vc.ns, vc.name)
		go func() {
			vc.stop()
			m.host.l.updateJSON()
		}()
	}
	for _, vc := range changed {
		logf("%s: the config of vcluster %s/%s changed: restarting its syncer", m.host.name, vc.ns, vc.name)
		go vc.restartSyncer()
	}
	for _, vc := range all {
		vc.followNodePorts(ctx)
		vc.watchSecret(ctx)
	}
	if len(gone) > 0 || len(want) > 0 {
		m.host.l.updateJSON()
	}
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// stopAll stops every vcluster (at the launcher's end) and no more start.
func (m *vcManager) stopAll() {
	m.mu.Lock()
	m.stopped = true
	vcs := make([]*virtualCluster, 0, len(m.vcs))
	for _, vc := range m.vcs {
		vcs = append(vcs, vc)
	}
	m.vcs = map[string]*virtualCluster{}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, vc := range vcs {
		wg.Go(vc.stop)
	}
	wg.Wait()
}

// stopOne stops the vcluster of release "namespace/name" for good, as if its
// processes had died and could not be restarted; the release stays (and is
// no longer followed) until it is removed.
func (m *vcManager) stopOne(key string) error {
	m.mu.Lock()
	vc := m.vcs[key]
	m.mu.Unlock()
	if vc == nil {
		return fmt.Errorf("no vcluster %s runs in %s", key, m.host.name)
	}
	vc.stop()
	vc.setState("stopped by stop-vcluster")
	return nil
}

// run starts the vcluster; on failure it reports and stops what it started.
func (vc *virtualCluster) run() {
	began := time.Now()
	err := vc.start()
	// Ports are picked free but may be taken by another launcher before the
	// process binds them: two more attempts with new ports.
	for attempt := 2; err != nil && attempt <= 3 && vc.ctx.Err() == nil; attempt++ {
		logf("%s: vcluster %s/%s: %v; attempt %d with new ports", vc.m.host.name, vc.ns, vc.name, err, attempt)
		vc.mu.Lock()
		ps := []*proc{vc.syncer, vc.controller, vc.apiserver, vc.etcd}
		vc.syncer, vc.controller, vc.apiserver, vc.etcd = nil, nil, nil, nil
		vc.syncerStarted = time.Time{}
		vc.mu.Unlock()
		for _, p := range ps {
			if p != nil {
				stopProcs([]*proc{p}, 3*time.Second)
			}
		}
		if rmErr := os.RemoveAll(vc.dir); rmErr != nil {
			err = rmErr
			break
		}
		err = vc.start()
	}
	if err != nil {
		if vc.ctx.Err() == nil {
			var se *startError
			logf("%s: vcluster %s/%s failed to start: %v", vc.m.host.name, vc.ns, vc.name, err)
			if errors.As(err, &se) && se.proc != nil {
				stderrMu.Lock()
				fmt.Fprintf(os.Stderr, "--- last 30 lines of %s ---\n%s---\n", se.proc.logPath, se.proc.logTail(30))
				stderrMu.Unlock()
			}
			vc.setState("failed: " + strings.ReplaceAll(err.Error(), "\n", " "))
			vc.m.host.l.updateJSON()
		}
		return
	}
	logf("%s: vcluster %s/%s: control plane ready and syncer started after %.1fs (proxy %s:%d)",
		vc.m.host.name, vc.ns, vc.name, time.Since(began).Seconds(), vc.ip, vc.proxyPort)
	vc.setState("running")
	vc.m.host.l.updateJSON()
}

func (vc *virtualCluster) setState(s string) {
	vc.mu.Lock()
	vc.state = s
	vc.mu.Unlock()
}

func (vc *virtualCluster) procs() []*proc {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	var ps []*proc
	for _, p := range []*proc{vc.syncer, vc.controller, vc.apiserver, vc.etcd} {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

func (vc *virtualCluster) fail(p *proc, format string, args ...any) error {
	return &startError{cluster: vc.m.host.name + " vcluster " + vc.ns + "/" + vc.name, proc: p, msg: fmt.Sprintf(format, args...)}
}

// startProc starts p unless the vcluster is being stopped: under vc.mu, so
// that stop, which cancels first and then collects the processes under vc.mu,
// never misses one.
func (vc *virtualCluster) startProc(p *proc) error {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.ctx.Err() != nil {
		return vc.ctx.Err()
	}
	if err := p.start(); err != nil {
		return vc.fail(p, "%v", err)
	}
	return nil
}

// start brings up the virtual control plane, then the syncer.
func (vc *virtualCluster) start() error {
	c := vc.m.host
	pkiDir := filepath.Join(vc.dir, "pki")
	logDir := filepath.Join(vc.dir, "logs")
	for _, d := range []string{pkiDir, logDir, filepath.Join(vc.dir, "home")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return vc.fail(nil, "%v", err)
		}
	}
	var err error
	for _, port := range []*int{&vc.etcdPort, &vc.etcdPeerPort, &vc.apiPort, &vc.proxyPort} {
		if *port, err = c.l.ports.get(); err != nil {
			return vc.fail(nil, "%v", err)
		}
	}
	if vc.ip, err = freeLoopback(); err != nil {
		return vc.fail(nil, "%v", err)
	}

	// One CA signs everything: the API server's serving certificate, the
	// syncer's proxy certificate (serverCAKey), the client certificates the
	// API server and the proxy accept (clientCACert), and etcd's.
	if vc.pki, err = newClusterPKI("vcluster-" + vc.name); err != nil {
		return vc.fail(nil, "%v", err)
	}
	if err := vc.pki.writeFiles(pkiDir); err != nil {
		return vc.fail(nil, "%v", err)
	}
	etcdServer, err := sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "etcd"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}, vc.pki.ca)
	if err != nil {
		return vc.fail(nil, "etcd certificate: %v", err)
	}
	etcdClient, err := clientCert(vc.pki.ca, "etcd-client")
	if err != nil {
		return vc.fail(nil, "etcd client certificate: %v", err)
	}
	files := map[string][]byte{
		"etcd-server.crt": etcdServer.certPEM, "etcd-server.key": etcdServer.keyPEM,
		"etcd-client.crt": etcdClient.certPEM, "etcd-client.key": etcdClient.keyPEM,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(pkiDir, name), data, 0o600); err != nil {
			return vc.fail(nil, "%v", err)
		}
	}
	pf := func(name string) string { return filepath.Join(pkiDir, name) }
	server := "https://127.0.0.1:" + strconv.Itoa(vc.apiPort)
	adminKC := filepath.Join(vc.dir, "admin.kubeconfig")
	controllerKC := filepath.Join(vc.dir, "controller-manager.kubeconfig")
	for _, k := range []struct {
		path string
		kc   kubeconfig
	}{
		{adminKC, kubeconfig{cluster: vc.name, user: vc.name, context: vc.name, client: vc.pki.admin}},
		{controllerKC, kubeconfig{cluster: vc.name, user: "kube-controller-manager", context: vc.name, client: vc.pki.controller}},
	} {
		k.kc.server, k.kc.ca = server, vc.pki.ca.certPEM
		if err := k.kc.write(k.path); err != nil {
			return vc.fail(nil, "%v", err)
		}
	}
	vc.client = &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			Proxy: nil, TLSClientConfig: vc.pki.adminTLS(), DisableCompression: true, MaxIdleConnsPerHost: 2,
		},
	}

	newProc := func(name, path string, args ...string) *proc {
		return &proc{
			cluster: c.name + "/vcluster-" + vc.ns + "-" + vc.name,
			name:    name,
			path:    path,
			args:    args,
			logPath: filepath.Join(logDir, name+".log"),
		}
	}
	etcdURL := "https://127.0.0.1:" + strconv.Itoa(vc.etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(vc.etcdPeerPort)
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	etcdName := "vcluster-" + vc.name + "-" + hex.EncodeToString(nonce[:])
	etcd := newProc("etcd", filepath.Join(c.l.bin, "etcd"),
		"--name="+etcdName,
		"--data-dir="+filepath.Join(vc.dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster="+etcdName+"="+peerURL,
		"--initial-cluster-state=new",
		"--cert-file="+pf("etcd-server.crt"),
		"--key-file="+pf("etcd-server.key"),
		"--client-cert-auth=true",
		"--trusted-ca-file="+vc.pki.caFile,
		"--unsafe-no-fsync=true",
		"--quota-backend-bytes="+strconv.Itoa(512<<20),
		"--heartbeat-interval=10",
		"--election-timeout=50",
		"--log-level=warn",
	)
	apiserver := newProc("kube-apiserver", filepath.Join(c.l.bin, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--etcd-cafile="+vc.pki.caFile,
		"--etcd-certfile="+pf("etcd-client.crt"),
		"--etcd-keyfile="+pf("etcd-client.key"),
		"--secure-port="+strconv.Itoa(vc.apiPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none",
		"--cert-dir="+pkiDir,
		"--tls-cert-file="+vc.pki.servingCertFile,
		"--tls-private-key-file="+vc.pki.servingKeyFile,
		"--client-ca-file="+vc.pki.caFile,
		"--authorization-mode=Node,RBAC",
		// vcluster copies the host's Service IPs into the virtual cluster.
		"--service-cluster-ip-range="+serviceCIDR,
		"--allow-privileged=true",
		"--service-account-issuer="+vclusterSAIssuer,
		"--service-account-key-file="+vc.pki.saPubFile,
		"--service-account-signing-key-file="+vc.pki.saKeyFile,
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	)
	controller := newProc("kube-controller-manager", filepath.Join(c.l.bin, "kube-controller-manager"),
		"--kubeconfig="+controllerKC,
		"--root-ca-file="+vc.pki.caFile,
		"--service-account-private-key-file="+vc.pki.saKeyFile,
		"--cluster-signing-cert-file="+vc.pki.caFile,
		"--cluster-signing-key-file="+vc.pki.caKeyFile,
		"--use-service-account-credentials=true",
		"--controllers="+vclusterControllers,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--profiling=false",
		"--kube-api-qps=1000",
		"--kube-api-burst=1000",
	)
	vc.mu.Lock()
	if vc.ctx.Err() != nil {
		vc.mu.Unlock()
		return vc.ctx.Err()
	}
	vc.etcd, vc.apiserver, vc.controller = etcd, apiserver, controller
	vc.mu.Unlock()

	ctx, cancel := context.WithTimeout(vc.ctx, 3*time.Minute)
	defer cancel()
	if err := vc.startProc(etcd); err != nil {
		return err
	}
	etcdClientTLS := vc.pki.adminTLS()
	etcdClientTLS.Certificates = []tls.Certificate{{
		Certificate: [][]byte{etcdClient.cert.Raw}, PrivateKey: etcdClient.key, Leaf: etcdClient.cert,
	}}
	etcdHTTP := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, TLSClientConfig: etcdClientTLS}}
	defer etcdHTTP.CloseIdleConnections()
	err = vc.waitFor(ctx, "etcd to be healthy", etcd, []*proc{etcd}, func() bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, etcdURL+"/health", nil)
		resp, err := etcdHTTP.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"health":"true"`))
	})
	if err != nil {
		return err
	}
	if err := vc.startProc(apiserver); err != nil {
		return err
	}
	err = vc.waitFor(ctx, "kube-apiserver /readyz", apiserver, []*proc{etcd, apiserver}, func() bool {
		code, _, err := vc.do(ctx, http.MethodGet, "/readyz")
		return err == nil && code == http.StatusOK
	})
	if err != nil {
		return err
	}
	if err := vc.startProc(controller); err != nil {
		return err
	}

	// The syncer's config: the chart's, with the upstream chart's defaults,
	// and the overrides that make it use the control plane above.
	configPath := filepath.Join(vc.dir, "config.json")
	if err := vc.writeConfig(configPath, etcdURL, pf, adminKC); err != nil {
		return vc.fail(nil, "%v", err)
	}
	hostsPath := filepath.Join(vc.dir, "hosts")
	if err := os.WriteFile(hostsPath, []byte(vc.ip+" localhost localhost.localdomain\n"), 0o644); err != nil {
		return vc.fail(nil, "%v", err)
	}
	self, err := os.Executable()
	if err != nil {
		return vc.fail(nil, "%v", err)
	}
	syncer := newProc("vcluster", self, "mountns-exec", hostsPath, vc.m.bin, "start", "--config", configPath)
	syncer.newMountNS = true
	syncer.env = []string{
		"POD_NAME=" + vc.name + "-0",
		"POD_NAMESPACE=" + vc.ns,
		"NAMESPACE=" + vc.ns,
		"VCLUSTER_NAME=" + vc.name,
		"KUBECONFIG=" + c.kubeconfig,
		"HOME=" + filepath.Join(vc.dir, "home"),
	}
	syncer.onExit = vc.syncerExited
	vc.mu.Lock()
	if vc.ctx.Err() != nil {
		vc.mu.Unlock()
		return vc.ctx.Err()
	}
	vc.syncer = syncer
	vc.syncerStarted = time.Now()
	vc.mu.Unlock()
	return vc.startProc(syncer)
}

// writeConfig writes the syncer's config file.
func (vc *virtualCluster) writeConfig(path, etcdURL string, pf func(string) string, adminKC string) error {
	vc.mu.Lock()
	chart := vc.configYAML
	vc.mu.Unlock()
	cmd := exec.Command(vc.m.configTool)
	cmd.Stdin = bytes.NewReader(chart)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", vc.m.configTool, err, strings.TrimSpace(stderr.String()))
	}
	var config map[string]any
	if err := json.Unmarshal(out, &config); err != nil {
		return fmt.Errorf("%s printed no JSON object: %v", vc.m.configTool, err)
	}
	for _, o := range vclusterOverrides(vc.ip, vc.proxyPort, strings.TrimPrefix(etcdURL, "https://"), vc.pki.caFile, vc.pki.caKeyFile, pf("etcd-client.crt"), pf("etcd-client.key"), adminKC) {
		set(config, o.path, o.value)
	}
	data, err := json.MarshalIndent(config, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(data, '\n'), 0o600)
}

type override struct {
	path  string
	value any
}

// vclusterOverrides are what the launcher changes in the chart's config.
func vclusterOverrides(ip string, proxyPort int, etcdEndpoint, caFile, caKeyFile, etcdCert, etcdKey, kubeconfig string) []override {
	return []override{
		// The test bed runs the control plane; the syncer runs nothing of it
		// (then /data and /binaries are never touched).
		{"controlPlane.distro.k8s.apiServer.enabled", false},
		{"controlPlane.distro.k8s.controllerManager.enabled", false},
		{"controlPlane.distro.k8s.scheduler.enabled", false},
		{"controlPlane.backingStore.database.embedded.enabled", false},
		{"controlPlane.backingStore.etcd.deploy.enabled", false},
		{"controlPlane.backingStore.etcd.embedded.enabled", false},
		{"controlPlane.backingStore.etcd.external.enabled", true},
		{"controlPlane.backingStore.etcd.external.endpoint", etcdEndpoint},
		{"controlPlane.backingStore.etcd.external.tls.caFile", caFile},
		{"controlPlane.backingStore.etcd.external.tls.certFile", etcdCert},
		{"controlPlane.backingStore.etcd.external.tls.keyFile", etcdKey},
		{"experimental.virtualClusterKubeConfig.kubeConfig", kubeconfig},
		{"experimental.virtualClusterKubeConfig.serverCACert", caFile},
		{"experimental.virtualClusterKubeConfig.serverCAKey", caKeyFile},
		{"experimental.virtualClusterKubeConfig.clientCACert", caFile},
		{"experimental.virtualClusterKubeConfig.clientCAKey", caKeyFile},
		{"experimental.virtualClusterKubeConfig.requestHeaderCACert", caFile},
		// Its own address: several syncers run on one machine.
		{"controlPlane.proxy.bindAddress", ip},
		{"controlPlane.proxy.port", proxyPort},
		{"telemetry.enabled", false},
	}
}

// set sets a dotted path in a JSON object, creating maps on the way.
func set(m map[string]any, path string, value any) {
	keys := strings.Split(path, ".")
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = value
}

// syncerExited restarts a syncer that died (not stopped by the launcher),
// after a pause that grows with each restart.
func (vc *virtualCluster) syncerExited(err error) {
	vc.mu.Lock()
	vc.restarts++
	n, p := vc.restarts, vc.syncer
	vc.mu.Unlock()
	if vc.ctx.Err() != nil || p == nil {
		return
	}
	delay := time.Duration(min(n, 10)) * time.Second
	logf("%s: vcluster %s/%s: the syncer exited (%s); restart %d in %v; log: %s",
		vc.m.host.name, vc.ns, vc.name, exitError(err), n, delay, p.logPath)
	select {
	case <-vc.ctx.Done():
		return
	case <-time.After(delay):
	}
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.ctx.Err() != nil || vc.syncer != p || p.running() {
		return
	}
	if err := p.start(); err != nil {
		logf("%s: vcluster %s/%s: restarting the syncer: %v", vc.m.host.name, vc.ns, vc.name, err)
	}
}

// restartSyncer restarts the syncer with the current chart config.
func (vc *virtualCluster) restartSyncer() {
	vc.mu.Lock()
	p := vc.syncer
	vc.mu.Unlock()
	if p == nil {
		return // still starting: it reads the config when it starts
	}
	stopProcs([]*proc{p}, 5*time.Second)
	configPath := filepath.Join(vc.dir, "config.json")
	pf := func(name string) string { return filepath.Join(vc.dir, "pki", name) }
	etcdURL := "https://127.0.0.1:" + strconv.Itoa(vc.etcdPort)
	if err := vc.writeConfig(configPath, etcdURL, pf, filepath.Join(vc.dir, "admin.kubeconfig")); err != nil {
		logf("%s: vcluster %s/%s: %v", vc.m.host.name, vc.ns, vc.name, err)
		return
	}
	if err := vc.startProc(p); err != nil && vc.ctx.Err() == nil {
		logf("%s: vcluster %s/%s: restarting the syncer: %v", vc.m.host.name, vc.ns, vc.name, err)
	}
}

// stop stops the forwarders and the processes and removes the data.
func (vc *virtualCluster) stop() {
	vc.cancel()
	vc.mu.Lock()
	for port, l := range vc.forwards {
		l.Close()
		delete(vc.forwards, port)
	}
	vc.mu.Unlock()
	ps := vc.procs()
	var etcd []*proc
	if n := len(ps); n > 0 && ps[n-1] == vc.etcd {
		ps, etcd = ps[:n-1], ps[n-1:]
	}
	stopProcs(ps, 5*time.Second)
	stopProcs(etcd, 3*time.Second)
	vc.setState("stopped")
	if vc.client != nil {
		vc.client.CloseIdleConnections()
	}
	if !vc.m.host.l.keep {
		if err := os.RemoveAll(vc.dir); err != nil {
			logf("cleanup: %v", err)
		}
	}
}

// watchSecret notes, once, when the syncer has written Secret vc-<name>.
func (vc *virtualCluster) watchSecret(ctx context.Context) {
	vc.mu.Lock()
	seen, started := vc.secretAfter > 0, vc.syncerStarted
	vc.mu.Unlock()
	if seen || started.IsZero() {
		return
	}
	code, _, err := vc.m.host.do(ctx, http.MethodGet, "/api/v1/namespaces/"+vc.ns+"/secrets/vc-"+vc.name, nil)
	if err != nil || code != http.StatusOK {
		return
	}
	after := time.Since(vc.appliedAt)
	vc.mu.Lock()
	vc.secretAfter = after
	vc.mu.Unlock()
	logf("%s: vcluster %s/%s wrote Secret vc-%s: %.1fs after the release's config Secret was created, %.1fs after the syncer started",
		vc.m.host.name, vc.ns, vc.name, vc.name, after.Seconds(), time.Since(started).Seconds())
}

// followNodePorts keeps one forwarder per node port of the release's
// NodePort Services (those that select its Pods: label release=<name>).
func (vc *virtualCluster) followNodePorts(ctx context.Context) {
	var svcs []struct {
		Metadata objectMeta `json:"metadata"`
		Spec     struct {
			Type     string            `json:"type"`
			Selector map[string]string `json:"selector"`
			Ports    []struct {
				NodePort int `json:"nodePort"`
			} `json:"ports"`
		} `json:"spec"`
	}
	if err := vc.m.list(ctx, "/api/v1/namespaces/"+vc.ns+"/services", &svcs); err != nil {
		return
	}
	want := map[int]bool{}
	for _, s := range svcs {
		if s.Spec.Type != "NodePort" || s.Spec.Selector["release"] != vc.name || s.Metadata.DeletionTimestamp != nil {
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.NodePort > 0 {
				want[p.NodePort] = true
			}
		}
	}
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.ctx.Err() != nil || vc.state != "running" {
		return // forwarders point at the syncer of a successful start only
	}
	for port, l := range vc.forwards {
		if !want[port] {
			l.Close()
			delete(vc.forwards, port)
		}
	}
	target := net.JoinHostPort(vc.ip, strconv.Itoa(vc.proxyPort))
	for port := range want {
		if vc.forwards[port] != nil {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			if !vc.forwardFailed[port] {
				logf("%s: vcluster %s/%s: cannot serve its node port on 127.0.0.1:%d: %v", vc.m.host.name, vc.ns, vc.name, port, err)
				vc.forwardFailed[port] = true
			}
			continue
		}
		delete(vc.forwardFailed, port)
		vc.forwards[port] = l
		go forward(l, target)
	}
}

// forward copies every connection accepted on l to target, both ways, until
// l is closed.
func forward(l net.Listener, target string) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			up, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, conn); closeWrite(up); done <- struct{}{} }()
			go func() { _, _ = io.Copy(conn, up); closeWrite(conn); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// freeLoopback picks a random 127.0.0.0/8 address (not 127.0.0.1) on which
// the syncer's fixed port 10099 is free.
func freeLoopback() (string, error) {
	for range 50 {
		var b [3]byte
		_, _ = rand.Read(b[:])
		if b[2] == 0 || b[2] == 255 || (b[0] == 0 && b[1] == 0 && b[2] == 1) {
			continue
		}
		ip := fmt.Sprintf("127.%d.%d.%d", b[0], b[1], b[2])
		l, err := net.Listen("tcp", ip+":10099")
		if err != nil {
			continue
		}
		l.Close()
		return ip, nil
	}
	return "", errors.New("no loopback address with port 10099 free")
}

// waitFor is cluster.waitFor for the virtual control plane.
func (vc *virtualCluster) waitFor(ctx context.Context, what string, blame *proc, watch []*proc, check func() bool) error {
	delay := 20 * time.Millisecond
	for {
		if check() {
			return nil
		}
		for _, p := range watch {
			if exited, err := p.exited(); exited {
				return vc.fail(p, "%s exited (%s) while waiting for %s", p.name, exitError(err), what)
			}
		}
		select {
		case <-ctx.Done():
			return vc.fail(blame, "gave up waiting for %s: %v", what, context.Cause(ctx))
		case <-time.After(delay):
		}
		delay = min(delay*2, 200*time.Millisecond)
	}
}

// do sends one request to the virtual API server as its admin.
func (vc *virtualCluster) do(ctx context.Context, method, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "https://127.0.0.1:"+strconv.Itoa(vc.apiPort)+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := vc.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// vclusterInfo is what testbed.json says of one running vcluster.
type vclusterInfo struct {
	Namespace     string         `json:"namespace"`
	Name          string         `json:"name"`
	State         string         `json:"state"`
	Dir           string         `json:"dir"`
	Proxy         string         `json:"proxy,omitempty"`
	NodePorts     []int          `json:"node_ports"`
	Restarts      int            `json:"syncer_restarts"`
	SecretSeconds float64        `json:"secret_seconds,omitempty"`
	Pids          map[string]int `json:"pids"`
}

func (m *vcManager) info() map[string]vclusterInfo {
	out := map[string]vclusterInfo{}
	if m == nil {
		return out
	}
	m.mu.Lock()
	vcs := make([]*virtualCluster, 0, len(m.vcs))
	for _, vc := range m.vcs {
		vcs = append(vcs, vc)
	}
	m.mu.Unlock()
	for _, vc := range vcs {
		pids := map[string]int{}
		for _, p := range vc.procs() {
			pids[p.name] = p.pid()
		}
		vc.mu.Lock()
		i := vclusterInfo{
			Namespace: vc.ns, Name: vc.name, State: vc.state, Dir: vc.dir,
			Restarts: vc.restarts, SecretSeconds: float64(vc.secretAfter.Milliseconds()) / 1000,
			Pids: pids, NodePorts: []int{},
		}
		if vc.proxyPort != 0 && vc.ip != "" {
			i.Proxy = net.JoinHostPort(vc.ip, strconv.Itoa(vc.proxyPort))
		}
		for port := range vc.forwards {
			i.NodePorts = append(i.NodePorts, port)
		}
		vc.mu.Unlock()
		slices.Sort(i.NodePorts)
		out[vc.ns+"/"+vc.name] = i
	}
	return out
}

// runMountnsExec is the hidden command `mountns-exec HOSTS PROG ARGS...`, run
// by the launcher in a new mount namespace: it makes HOSTS this namespace's
// /etc/hosts and executes PROG.
func runMountnsExec(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nautes-testbed mountns-exec HOSTS PROG [ARG...]")
		return 2
	}
	// Mounts made here must not propagate back to the launcher's namespace.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		fmt.Fprintf(os.Stderr, "mountns-exec: make / private: %v\n", err)
		return 1
	}
	if err := syscall.Mount(args[0], "/etc/hosts", "", syscall.MS_BIND, ""); err != nil {
		fmt.Fprintf(os.Stderr, "mountns-exec: bind %s on /etc/hosts: %v\n", args[0], err)
		return 1
	}
	err := syscall.Exec(args[1], args[1:], os.Environ())
	fmt.Fprintf(os.Stderr, "mountns-exec: exec %s: %v\n", args[1], err)
	return 1
}
