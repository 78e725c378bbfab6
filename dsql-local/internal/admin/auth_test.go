package admin

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/temporal-dsql-deploy/dsql-local/internal/proxy"
	"github.com/temporal-dsql-deploy/dsql-local/internal/token"
)

// testEndpoint is an endpoint serving region, of cluster (nil: a cluster of its own), that is never started.
func testEndpoint(region string, cluster *proxy.Cluster) *proxy.Server {
	return proxy.New(proxy.Config{Tokens: &token.Verifier{Region: region}, Cluster: cluster,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// reached records which requests the guarded handler saw.
type reached struct{ paths []string }

func (h *reached) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.paths = append(h.paths, r.URL.Path)
	w.WriteHeader(http.StatusOK)
}

func serve(t *testing.T, handler http.Handler, method, target, authorization string) int {
	t.Helper()
	request := httptest.NewRequest(method, target, strings.NewReader("conflict_rate=1"))
	request.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if authorization != "" {
		request.Header.Set("Authorization", authorization)
	}
	recorder := httptest.NewRecorder()
	handler.ServeHTTP(recorder, request)
	return recorder.Code
}

func TestControlPathsNeedTheKey(t *testing.T) {
	inner := &reached{}
	guarded := RequireKey(inner, []byte("s3cret-key"))
	refused := []struct{ method, path, authorization string }{
		{"POST", "/faults", ""},
		{"GET", "/faults", ""},
		{"GET", "/stats", ""},
		{"GET", "/debug/pprof/heap", ""},
		{"GET", "/debug/pprof/profile?seconds=1", ""},
		{"POST", "/faults", "Bearer wrong-key!"},
		{"POST", "/faults", "Bearer s3cret-ke"},   // a prefix of the key
		{"POST", "/faults", "Bearer s3cret-key2"}, // the key and more
		{"POST", "/faults", "Basic s3cret-key"},   // another scheme
		{"POST", "/faults", "s3cret-key"},         // no scheme
		{"POST", "/faults", "Bearer "},
		{"GET", "/healthz/../faults", ""}, // not the open path, whatever it cleans to
		{"GET", "/metrics/", ""},
	}
	for _, c := range refused {
		if code := serve(t, guarded, c.method, c.path, c.authorization); code != http.StatusUnauthorized {
			t.Errorf("%s %s with %q: %d, want 401", c.method, c.path, c.authorization, code)
		}
	}
	if len(inner.paths) != 0 {
		t.Fatalf("refused requests reached the handler: %v", inner.paths)
	}
	for _, authorization := range []string{"Bearer s3cret-key", "bearer s3cret-key"} {
		if code := serve(t, guarded, "POST", "/faults", authorization); code != http.StatusOK {
			t.Errorf("POST /faults with %q: %d, want 200", authorization, code)
		}
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		if code := serve(t, guarded, "GET", path, ""); code != http.StatusOK {
			t.Errorf("GET %s without a key: %d, want 200 (supervisors and the scraper carry none)", path, code)
		}
	}
	if want := []string{"/faults", "/faults", "/healthz", "/metrics"}; strings.Join(inner.paths, " ") != strings.Join(want, " ") {
		t.Fatalf("the handler saw %v, want %v", inner.paths, want)
	}
}

func TestAnEmptyKeyOpensNothing(t *testing.T) {
	inner := &reached{}
	guarded := RequireKey(inner, nil)
	for _, authorization := range []string{"", "Bearer ", "Bearer"} {
		if code := serve(t, guarded, "POST", "/faults", authorization); code != http.StatusUnauthorized {
			t.Errorf("an empty key let POST /faults with %q through: %d", authorization, code)
		}
	}
	if code := serve(t, guarded, "GET", "/healthz", ""); code != http.StatusOK {
		t.Errorf("GET /healthz: %d, want 200", code)
	}
}

func TestTheRefusalNamesWhatIsNeededNotTheKey(t *testing.T) {
	recorder := httptest.NewRecorder()
	RequireKey(http.NotFoundHandler(), []byte("the-kept-key-value")).ServeHTTP(recorder, httptest.NewRequest("GET", "/stats", nil))
	body := recorder.Body.String()
	if !strings.Contains(body, "Authorization: Bearer") || strings.Contains(body, "the-kept-key-value") {
		t.Fatalf("refusal body %q", body)
	}
	if got := recorder.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Fatalf("WWW-Authenticate %q", got)
	}
}

func TestFaultsCannotBeSetWithoutTheKey(t *testing.T) {
	stand := testEndpoint("us-east-1", nil)
	guarded := RequireKey(Handler([]*proxy.Server{stand}, nil), []byte("the-key"))
	if code := serve(t, guarded, "POST", "/faults", ""); code != http.StatusUnauthorized {
		t.Fatalf("POST /faults without the key: %d", code)
	}
	if rate, _, _ := stand.Faults.State(); rate != 0 {
		t.Fatalf("a refused request set the conflict rate to %v", rate)
	}
	if code := serve(t, guarded, "POST", "/faults", "Bearer the-key"); code != http.StatusOK {
		t.Fatalf("POST /faults with the key: %d", code)
	}
	if rate, _, _ := stand.Faults.State(); rate != 1 {
		t.Fatalf("the conflict rate is %v after POST conflict_rate=1 with the key", rate)
	}
}
