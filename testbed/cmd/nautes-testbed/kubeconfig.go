package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// kubeconfig is the content of one kubeconfig file with a single cluster,
// user and context, all credentials embedded.
type kubeconfig struct {
	cluster, user, context string
	server                 string
	ca                     []byte
	client                 *keyPair
}

func (k kubeconfig) render() []byte {
	b64 := base64.StdEncoding.EncodeToString
	q := strconv.Quote // a JSON-compatible, hence YAML-compatible, quoted string
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: %s
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: %s
  context:
    cluster: %s
    user: %s
current-context: %s
preferences: {}
`,
		q(k.cluster), q(k.server), b64(k.ca),
		q(k.user), b64(k.client.certPEM), b64(k.client.keyPEM),
		q(k.context), q(k.cluster), q(k.user),
		q(k.context))
}

// write writes the file with mode 0600, replacing it atomically.
func (k kubeconfig) write(path string) error {
	return writeFileAtomic(path, k.render(), 0o600)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
