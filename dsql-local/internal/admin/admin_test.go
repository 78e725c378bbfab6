package admin

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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
	server := NewServer("", Handler([]*proxy.Server{testEndpoint("us-east-1", nil)}, nil))
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

// call sends form to the handler and decodes its JSON answer; it fails the test unless the status is want.
func call(t *testing.T, handler http.Handler, method, path, form string, want int) map[string]any {
	t.Helper()
	request := httptest.NewRequest(method, path, strings.NewReader(form))
	request.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	recorder := httptest.NewRecorder()
	handler.ServeHTTP(recorder, request)
	if recorder.Code != want {
		t.Fatalf("%s %s %s: %d %s", method, path, form, recorder.Code, recorder.Body)
	}
	answer := map[string]any{}
	if want == http.StatusOK {
		if err := json.Unmarshal(recorder.Body.Bytes(), &answer); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return answer
}

func TestTwoRegionsOfOnePeeredCluster(t *testing.T) {
	east := testEndpoint("us-east-1", nil)
	west := testEndpoint("us-west-2", east.Cluster)
	handler := Handler([]*proxy.Server{east, west}, nil)

	call(t, handler, "POST", "/latency", "profile=multi-region", http.StatusOK) // no Region named: both
	if answer := call(t, handler, "POST", "/latency", "profile=none&region=us-west-2", http.StatusOK); answer["region"] != "us-west-2" {
		t.Fatalf("the latency answer names the Region it set: %v", answer)
	}
	if east.Latency.Profile().Name != "multi-region" || west.Latency.Profile().Name != "none" {
		t.Fatalf("latency per Region: east %s, west %s", east.Latency.Profile().Name, west.Latency.Profile().Name)
	}
	if answer := call(t, handler, "GET", "/latency?region=us-west-2", "", http.StatusOK); answer["profile"] != "none" {
		t.Fatalf("GET /latency for us-west-2: %v", answer)
	}
	call(t, handler, "POST", "/latency", "profile=none&region=eu-west-1", http.StatusBadRequest)

	isolated := call(t, handler, "POST", "/isolation", "region=us-east-1&isolated=true", http.StatusOK)
	if isolated["us-east-1"] != true || isolated["us-west-2"] != false || !east.Isolated() || west.Isolated() {
		t.Fatalf("isolating us-east-1 alone: %v", isolated)
	}
	call(t, handler, "POST", "/isolation", "isolated=true", http.StatusBadRequest)
	call(t, handler, "POST", "/isolation", "region=us-east-1&isolated=maybe", http.StatusBadRequest)
	call(t, handler, "POST", "/isolation", "region=mars-1&isolated=true", http.StatusBadRequest)

	// Faults belong to the cluster: set through the handler, both endpoints' sessions draw from them.
	call(t, handler, "POST", "/faults", "conflict_rate=0.5&seed=3", http.StatusOK)
	if rate, _, _ := west.Faults.State(); rate != 0.5 {
		t.Fatalf("the peer endpoint sees conflict rate %v", rate)
	}
	stats := call(t, handler, "GET", "/stats", "", http.StatusOK)
	endpoints, _ := stats["endpoints"].(map[string]any)
	east1, _ := endpoints["us-east-1"].(map[string]any)
	if len(endpoints) != 2 || east1["isolated"] != true || east1["latency"] != "multi-region" || stats["round_trips"] != float64(0) {
		t.Fatalf("stats: %v", stats)
	}
}
