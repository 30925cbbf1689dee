package app

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

// With -redis-tls an instance talks TLS to Redis and verifies its
// certificate (ElastiCache with in-transit encryption): against
// -redis-ca-file's CA here, and it refuses a server the system's roots do
// not vouch for.
func TestStartWithRedisTLS(t *testing.T) {
	dir := t.TempDir()
	ca := writeTestCA(t, dir)
	server, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (make deps installs it): %v", err)
	}
	port, err := localinfra.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	redis := exec.Command(server, "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", filepath.Join(dir, "server.pem"), "--tls-key-file", filepath.Join(dir, "server-key.pem"),
		"--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", dir)
	var out bytes.Buffer
	redis.Stdout, redis.Stderr = &out, &out
	if err := redis.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = redis.Process.Kill(); _ = redis.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server with TLS on %s did not listen:\n%s", addr, out.String())
		}
	}

	start := func(tls bool, caFile string) error {
		cfg := testConfig(t, "", addr)
		cfg.RedisUsername, cfg.RedisPassword = "", "" // no ACL on this server
		cfg.RedisTLS, cfg.RedisCAFile = tls, caFile
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var logs bytes.Buffer
		in, err := Start(ctx, cfg, &logs, Options{})
		if err == nil {
			err = in.Redis.Set(ctx, "tls", "yes", time.Minute).Err()
			in.Close()
		}
		return err
	}
	if err := start(true, ca); err != nil {
		t.Errorf("TLS with the server's CA: %v", err)
	}
	if err := start(true, ""); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("TLS verified by the system's roots, which do not know this CA: %v, want a certificate error", err)
	}
	if err := start(false, ""); err == nil {
		t.Error("plain TCP to a TLS-only Redis: no error")
	}
}

// writeTestCA writes a CA (ca.pem, returned) and a server certificate for
// 127.0.0.1 it signed (server.pem, server-key.pem) into dir.
func writeTestCA(t *testing.T, dir string) string {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, kind string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	caKey, serverKey := key(), key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	serverTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redis"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	serverDER, err := x509.CreateCertificate(rand.Reader, serverTmpl, caCert, &serverKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	serverKeyDER, err := x509.MarshalECPrivateKey(serverKey)
	if err != nil {
		t.Fatal(err)
	}
	write("server.pem", "CERTIFICATE", serverDER)
	write("server-key.pem", "EC PRIVATE KEY", serverKeyDER)
	return write("ca.pem", "CERTIFICATE", caDER)
}
