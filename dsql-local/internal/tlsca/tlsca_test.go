package tlsca

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

func TestServerCertificateVerifiesAgainstTheKeptCA(t *testing.T) {
	dir := t.TempDir()
	first, err := ServerConfig(dir, []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, CAFile))
	second, err := ServerConfig(dir, []string{"127.0.0.1", "localhost"}) // the CA is reused, not remade
	if err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(filepath.Join(dir, CAFile))
	if string(caPEM) != string(again) {
		t.Fatal("the CA changed between starts")
	}
	if info, _ := os.Stat(filepath.Join(dir, caKeyFile)); info.Mode().Perm() != 0o600 {
		t.Fatalf("CA key mode %v", info.Mode().Perm())
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	for _, config := range []*tls.Config{first, second} {
		listener, err := tls.Listen("tcp", "127.0.0.1:0", config)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			if conn, err := listener.Accept(); err == nil {
				_ = conn.(*tls.Conn).Handshake()
				conn.Close()
			}
		}()
		conn, err := tls.Dial("tcp", listener.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatalf("verify-full against the CA failed: %v", err)
		}
		conn.Close()
		listener.Close()
	}
}

func TestPublishedCAIsTheCertificateAlone(t *testing.T) {
	dir, published := t.TempDir(), filepath.Join(t.TempDir(), "ca")
	if _, err := ServerConfig(dir, []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	if err := PublishCA(dir, published); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(dir, CAFile))
	got, err := os.ReadFile(filepath.Join(published, CAFile))
	if err != nil || string(got) != string(want) {
		t.Fatalf("published CA differs from the CA (%v)", err)
	}
	entries, _ := os.ReadDir(published)
	if len(entries) != 1 {
		t.Fatalf("the published directory holds %d entries, want only %s", len(entries), CAFile)
	}
}
