// Command certs writes the PKI of the local control plane: a cluster CA, the
// kube-apiserver's serving certificate, the service-account signing key, one
// x509 client certificate per user (CN = user name, O = groups), the
// aggregation layer's front-proxy CA and client, and KEDA's certificate
// (serving and client, for its operator's gRPC service and its metrics API
// server).
//
// Files already present are kept, so running it again is harmless; a file
// added in a later version is written into an existing PKI.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// clientUsers are the identities the control plane and the tests use.
var clientUsers = []struct {
	file   string
	name   string
	groups []string
}{
	{"admin", "fleet-admin", []string{"system:masters"}},
	// Bound by the control-plane script to one namespace only.
	{"restricted", "fleet-restricted", nil},
	{"controller-manager", "system:kube-controller-manager", nil},
	{"scheduler", "system:kube-scheduler", nil},
	{"kwok", "kwok-controller", []string{"system:masters"}},
}

const validity = 10 * 365 * 24 * time.Hour

func main() {
	dir := flag.String("dir", "", "directory to write the PKI into (required)")
	flag.Parse()
	if *dir == "" {
		log.Fatal("certs: --dir is required")
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		log.Fatal(err)
	}
	path := func(name string) string { return filepath.Join(*dir, name) }

	ca, caKey := authority(path("ca"), "fleet-test-ca")

	if !exists(path("apiserver.crt")) {
		serving := leaf(pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth)
		serving.DNSNames = []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}
		serving.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")}
		writePair(path("apiserver"), serving, ca, caKey)
	}

	for _, user := range clientUsers {
		if exists(path(user.file + ".crt")) {
			continue
		}
		template := leaf(pkix.Name{CommonName: user.name, Organization: user.groups}, x509.ExtKeyUsageClientAuth)
		writePair(path(user.file), template, ca, caKey)
	}

	if !exists(path("sa.pub")) {
		saKey := newKey()
		writeKey(path("sa.key"), saKey)
		saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
		if err != nil {
			log.Fatal(err)
		}
		writePEM(path("sa.pub"), "PUBLIC KEY", saPub)
	}

	// The aggregation layer: the API server proves itself to an extension
	// API server (KEDA's metrics server) with a client certificate from a
	// CA of its own, as kubeadm sets it up.
	proxyCA, proxyKey := authority(path("front-proxy-ca"), "fleet-front-proxy-ca")
	if !exists(path("front-proxy-client.crt")) {
		client := leaf(pkix.Name{CommonName: "front-proxy-client"}, x509.ExtKeyUsageClientAuth)
		writePair(path("front-proxy-client"), client, proxyCA, proxyKey)
	}

	// KEDA's operator serves gRPC to its metrics server with mutual TLS
	// from one directory (ca.crt, tls.crt, tls.key); the metrics server
	// serves the API server with the same certificate. Both run on
	// loopback, under the names their Services have in a cluster too.
	// Both also talk to the API server with it, as a member of
	// system:masters (its Helm chart's ClusterRoles, and more: a test
	// cluster).
	if !exists(path("keda.crt")) {
		keda := leaf(pkix.Name{CommonName: "keda-operator", Organization: []string{"system:masters"}},
			x509.ExtKeyUsageServerAuth)
		keda.ExtKeyUsage = append(keda.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
		keda.DNSNames = []string{"localhost", "keda-operator", "keda-operator.keda.svc",
			"keda-metrics-apiserver", "keda-metrics-apiserver.keda.svc"}
		keda.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		writePair(path("keda"), keda, ca, caKey)
	}
}

// authority loads the CA at base.crt and base.key, or makes one. The
// certificate is written last: its presence marks a complete pair.
func authority(base, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	if exists(base+".crt") && exists(base+".key") {
		return loadCert(base + ".crt"), loadKey(base + ".key")
	}
	key := newKey()
	template := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		log.Fatal(err)
	}
	writeKey(base+".key", key)
	writePEM(base+".crt", "CERTIFICATE", der)
	return cert, key
}

func leaf(subject pkix.Name, usage x509.ExtKeyUsage) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: serial(),
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
}

// writePair writes base.key, then base.crt (whose presence marks the pair).
func writePair(base string, template, ca *x509.Certificate, caKey *ecdsa.PrivateKey) {
	key := newKey()
	der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
	if err != nil {
		log.Fatal(err)
	}
	writeKey(base+".key", key)
	writePEM(base+".crt", "CERTIFICATE", der)
}

func newKey() *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	return key
}

func writeKey(path string, key *ecdsa.PrivateKey) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		log.Fatal(err)
	}
	writePEM(path, "EC PRIVATE KEY", der)
}

func writePEM(path, blockType string, der []byte) {
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		log.Fatal(err)
	}
}

func readPEM(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		log.Fatalf("certs: %s holds no PEM block", path)
	}
	return block.Bytes
}

func loadCert(path string) *x509.Certificate {
	cert, err := x509.ParseCertificate(readPEM(path))
	if err != nil {
		log.Fatal(err)
	}
	return cert
}

func loadKey(path string) *ecdsa.PrivateKey {
	key, err := x509.ParseECPrivateKey(readPEM(path))
	if err != nil {
		log.Fatal(err)
	}
	return key
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		log.Fatal(err)
	}
	return n
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
