package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certValidity is long enough for any test run and short enough that a
// leaked key of this throwaway CA is worth nothing.
const certValidity = 7 * 24 * time.Hour

// authority is the cluster's one certificate authority: it signs every
// serving and client certificate, and the API server and kubelet trust it.
type authority struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

func newAuthority() (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "mercato-k8s-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &authority{cert: cert, key: key, certPEM: pemBlock("CERTIFICATE", der)}, nil
}

// leaf is what a signed certificate is for: a server (names and IPs it
// answers on) or a client (a user and groups for Kubernetes' authorizers).
type leaf struct {
	commonName string
	groups     []string // Organization: the Kubernetes groups of a client
	dnsNames   []string
	ips        []net.IP
	server     bool
	client     bool
}

// issue signs a fresh key for l and returns the certificate and key PEM.
func (a *authority) issue(l leaf) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: l.commonName, Organization: l.groups},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		DNSNames:     l.dnsNames,
		IPAddresses:  l.ips,
	}
	if l.server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if l.client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = ecKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), keyPEM, nil
}

// clients are the identities that talk to the API server, each with a
// kubeconfig of its own: the name of the file, the user and its groups.
// Kubernetes' default RBAC policy binds these exact names (system:kube-proxy
// to system:node-proxier, and so on); the kubelet's name is what the Node
// authorizer and NodeRestriction admission expect of node nodeName.
func clients(nodeName string) []struct {
	file   string
	user   string
	groups []string
} {
	return []struct {
		file   string
		user   string
		groups []string
	}{
		{"admin", "kubernetes-admin", []string{"system:masters"}},
		{"controller-manager", "system:kube-controller-manager", nil},
		{"scheduler", "system:kube-scheduler", nil},
		{"kubelet", "system:node:" + nodeName, []string{"system:nodes"}},
		{"kube-proxy", "system:kube-proxy", nil},
	}
}

// writePKI generates the CA, the API server's, kubelet's and controllers'
// serving certificates, the API server's client certificate for kubelets, the
// service-account signing key and a kubeconfig per client into l.pki, all
// fresh on every start.
func writePKI(l layout, nodeName string) error {
	ca, err := newAuthority()
	if err != nil {
		return fmt.Errorf("certificate authority: %w", err)
	}
	if err := os.MkdirAll(l.pki, 0o700); err != nil {
		return err
	}
	files := map[string][]byte{"ca.crt": ca.certPEM}
	issue := func(name string, lf leaf) error {
		c, k, err := ca.issue(lf)
		if err != nil {
			return fmt.Errorf("certificate %s: %w", name, err)
		}
		files[name+".crt"], files[name+".key"] = c, k
		return nil
	}
	apiserver := leaf{
		commonName: "kube-apiserver",
		dnsNames: []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc." + clusterDomain, "localhost"},
		ips:    []net.IP{net.ParseIP(NodeIP), net.ParseIP(kubernetesServiceIP), net.IPv4(127, 0, 0, 1)},
		server: true,
	}
	if err := issue("apiserver", apiserver); err != nil {
		return err
	}
	kubelet := leaf{commonName: nodeName, dnsNames: []string{nodeName}, ips: []net.IP{net.ParseIP(NodeIP)}, server: true}
	if err := issue("kubelet-serving", kubelet); err != nil {
		return err
	}
	// The controller manager and the scheduler serve their health checks
	// on loopback.
	loopback := leaf{commonName: "loopback", dnsNames: []string{"localhost"}, ips: []net.IP{net.IPv4(127, 0, 0, 1)}, server: true}
	if err := issue("loopback-serving", loopback); err != nil {
		return err
	}
	// The API server calls kubelets (logs, exec, port-forward) as a member
	// of system:masters.
	kubeletClient := leaf{commonName: "kube-apiserver-kubelet-client", groups: []string{"system:masters"}, client: true}
	if err := issue("apiserver-kubelet-client", kubeletClient); err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if files["sa.key"], err = ecKeyPEM(saKey); err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(l.pki, name), data, 0o600); err != nil {
			return err
		}
	}
	for _, c := range clients(nodeName) {
		cert, key, err := ca.issue(leaf{commonName: c.user, groups: c.groups, client: true})
		if err != nil {
			return fmt.Errorf("certificate %s: %w", c.file, err)
		}
		if err := os.WriteFile(l.kubeconfig(c.file), kubeconfig(ca.certPEM, cert, key), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// kubeconfig is a client configuration for the API server with the
// certificates inline, so the file alone is enough for kubectl.
func kubeconfig(caPEM, certPEM, keyPEM []byte) []byte {
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: mercato-k8s
  cluster:
    server: https://%s
    certificate-authority-data: %s
users:
- name: mercato-k8s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: mercato-k8s
  context:
    cluster: mercato-k8s
    user: mercato-k8s
current-context: mercato-k8s
`, apiServerAddr, b64(caPEM), b64(certPEM), b64(keyPEM))
}

func ecKeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pemBlock("EC PRIVATE KEY", der), nil
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}
