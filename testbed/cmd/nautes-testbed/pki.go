package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// keyPair is a certificate with its private key, both also kept PEM encoded.
type keyPair struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

// clusterPKI holds everything one cluster needs: a CA that signs the serving
// certificate and every client certificate, the service-account key pair, and
// the client certificates of the users and components.
type clusterPKI struct {
	ca         *keyPair
	apiserver  *keyPair
	admin      *keyPair
	restricted *keyPair
	controller *keyPair
	scheduler  *keyPair
	saKeyPEM   []byte
	saPubPEM   []byte

	// Files written by writeFiles.
	caFile, caKeyFile, servingCertFile, servingKeyFile, saKeyFile, saPubFile string
}

const (
	adminUser      = "nautes-admin"
	restrictedUser = "nautes-restricted"
)

func newKey() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func serialNumber() (*big.Int, error) {
	// 127 bits: positive and well under the 20 octets RFC 5280 allows.
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// sign creates a certificate for a fresh key from tmpl, signed by parent (or
// self-signed when parent is nil).
func sign(tmpl *x509.Certificate, parent *keyPair) (*keyPair, error) {
	key, keyPEM, err := newKey()
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(365 * 24 * time.Hour)
	tmpl.BasicConstraintsValid = true
	issuer, signer := tmpl, crypto.Signer(key)
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &keyPair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  keyPEM,
	}, nil
}

func clientCert(ca *keyPair, cn string, groups ...string) (*keyPair, error) {
	return sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: groups},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca)
}

// newClusterPKI generates the keys and certificates of one cluster. ECDSA
// P-256 keeps this to a few milliseconds.
func newClusterPKI(name string) (*clusterPKI, error) {
	p := &clusterPKI{}
	var err error
	p.ca, err = sign(&x509.Certificate{
		Subject:  pkix.Name{CommonName: "nautes-testbed-ca-" + name},
		IsCA:     true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	p.apiserver, err = sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{
			"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local",
		},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP(serviceIP)},
	}, p.ca)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	for _, c := range []struct {
		dst    **keyPair
		cn     string
		groups []string
	}{
		{&p.admin, adminUser, []string{"system:masters"}},
		{&p.restricted, restrictedUser, nil},
		{&p.controller, "system:kube-controller-manager", nil},
		{&p.scheduler, "system:kube-scheduler", nil},
	} {
		if *c.dst, err = clientCert(p.ca, c.cn, c.groups...); err != nil {
			return nil, fmt.Errorf("client certificate %s: %w", c.cn, err)
		}
	}
	saKey, saKeyPEM, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("service-account key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return nil, fmt.Errorf("service-account key: %w", err)
	}
	p.saKeyPEM = saKeyPEM
	p.saPubPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	return p, nil
}

// writeFiles writes the files the components read into dir.
func (p *clusterPKI) writeFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := []struct {
		dst  *string
		name string
		data []byte
	}{
		{&p.caFile, "ca.crt", p.ca.certPEM},
		{&p.caKeyFile, "ca.key", p.ca.keyPEM},
		{&p.servingCertFile, "apiserver.crt", p.apiserver.certPEM},
		{&p.servingKeyFile, "apiserver.key", p.apiserver.keyPEM},
		{&p.saKeyFile, "sa.key", p.saKeyPEM},
		{&p.saPubFile, "sa.pub", p.saPubPEM},
	}
	for _, f := range files {
		*f.dst = filepath.Join(dir, f.name)
		if err := os.WriteFile(*f.dst, f.data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// adminTLS is the client TLS configuration of the admin user, for the
// launcher's own requests.
func (p *clusterPKI) adminTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.cert)
	return &tls.Config{
		RootCAs: pool,
		Certificates: []tls.Certificate{{
			Certificate: [][]byte{p.admin.cert.Raw},
			PrivateKey:  p.admin.key,
			Leaf:        p.admin.cert,
		}},
		MinVersion: tls.VersionTLS12,
	}
}
