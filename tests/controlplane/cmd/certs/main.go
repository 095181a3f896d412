// Command certs writes the PKI of the local control plane: a cluster CA, the
// kube-apiserver's serving certificate, the service-account signing key, and
// one x509 client certificate per user (CN = user name, O = groups).
//
// Files already present are kept, so running it again is harmless.
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

	if exists(path("ca.crt")) && exists(path("ca.key")) {
		return
	}

	caKey := newKey()
	caTemplate := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "fleet-test-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		log.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		log.Fatal(err)
	}

	serving := leaf(pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth)
	serving.DNSNames = []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}
	serving.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")}
	writePair(path("apiserver"), serving, ca, caKey)

	for _, user := range clientUsers {
		template := leaf(pkix.Name{CommonName: user.name, Organization: user.groups}, x509.ExtKeyUsageClientAuth)
		writePair(path(user.file), template, ca, caKey)
	}

	saKey := newKey()
	writeKey(path("sa.key"), saKey)
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		log.Fatal(err)
	}
	writePEM(path("sa.pub"), "PUBLIC KEY", saPub)

	// The CA goes last: its presence marks a complete PKI.
	writeKey(path("ca.key"), caKey)
	writePEM(path("ca.crt"), "CERTIFICATE", caDER)
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
