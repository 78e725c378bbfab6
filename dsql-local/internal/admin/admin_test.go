package admin

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/temporal-dsql-deploy/dsql-local/internal/proxy"
)

func TestAdminServerHasEveryTimeout(t *testing.T) {
	server := NewServer("127.0.0.1:0", http.NotFoundHandler())
	for name, timeout := range map[string]time.Duration{"ReadHeaderTimeout": server.ReadHeaderTimeout,
		"ReadTimeout": server.ReadTimeout, "WriteTimeout": server.WriteTimeout, "IdleTimeout": server.IdleTimeout} {
		if timeout <= 0 {
			t.Errorf("%s is not set", name)
		}
	}
	if server.ReadHeaderTimeout > server.ReadTimeout {
		t.Error("the header timeout is longer than the whole request's")
	}
	if server.WriteTimeout <= MaxProfileSeconds*time.Second || MaxProfileSeconds < 30 {
		t.Errorf("WriteTimeout %v leaves no room for the longest profile (%d s; pprof's default is 30 s)", server.WriteTimeout, MaxProfileSeconds)
	}
}

func TestProfilesAreBounded(t *testing.T) {
	stand := proxy.New(proxy.Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	server := NewServer("", Handler(stand, nil))
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = server.Serve(listener) }()
	defer server.Close()
	base := "http://" + listener.Addr().String() + "/debug/pprof/profile?seconds="
	response, err := http.Get(base + "1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(response.Body)
	response.Body.Close()
	if response.StatusCode != http.StatusOK || len(body) == 0 {
		t.Fatalf("a 1 s profile: %d, %d bytes", response.StatusCode, len(body))
	}
	// pprof moves its write deadline out by the seconds asked for: a longer profile than the bound is
	// refused, so that no client holds the connection for as long as it likes.
	for _, path := range []string{"/debug/pprof/profile?seconds=61", "/debug/pprof/heap?seconds=3600", "/debug/pprof/profile?seconds=1e9"} {
		response, err = http.Get("http://" + listener.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(response.Body)
		response.Body.Close()
		if response.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "at most 60 seconds") {
			t.Fatalf("%s: %d %s", path, response.StatusCode, body)
		}
	}
}

func TestASilentClientLosesItsConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for ReadHeaderTimeout")
	}
	server := NewServer("", http.NotFoundHandler())
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = server.Serve(listener) }()
	defer server.Close()
	conn, err := net.Dial("tcp", listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_, _ = conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")) // and never the blank line
	_ = conn.SetReadDeadline(time.Now().Add(ReadHeaderTimeout + 5*time.Second))
	_, _ = io.ReadAll(conn)
	if waited := time.Since(start); waited < ReadHeaderTimeout-time.Second || waited > ReadHeaderTimeout+4*time.Second {
		t.Fatalf("the server closed a silent client after %v, want about %v", waited, ReadHeaderTimeout)
	}
}
