// Package admin is the stand-in's HTTP side door: health for supervisors, fault injection for tests.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/temporal-dsql-deploy/dsql-local/internal/backend"
	"github.com/temporal-dsql-deploy/dsql-local/internal/latency"
	"github.com/temporal-dsql-deploy/dsql-local/internal/proxy"
)

// The admin server's timeouts. No request to it carries more than a short form, so reading one is
// bounded tightly. The longest answer is a profile: pprof's CPU profile lasts 30 s by default and as
// long as `?seconds=` asks, and Go's pprof moves the write deadline out by those seconds
// itself, so the stand-in refuses more than MaxProfileSeconds; WriteTimeout outlasts that too, for a
// toolchain whose pprof does not move it.
const (
	ReadHeaderTimeout = 5 * time.Second  // a slow or silent client gives up its connection this soon
	ReadTimeout       = 10 * time.Second // headers and body: a /faults form is a few dozen bytes
	WriteTimeout      = 65 * time.Second // the longest profile and its writing; /healthz gives up after 3 s
	IdleTimeout       = 60 * time.Second // past the scraper's default 15 s interval, so its connection is reused
	MaxProfileSeconds = 60               // twice pprof's default 30 s
)

// NewServer is the admin HTTP server on address, with every timeout set.
func NewServer(address string, handler http.Handler) *http.Server {
	return &http.Server{Addr: address, Handler: handler, ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout: ReadTimeout, WriteTimeout: WriteTimeout, IdleTimeout: IdleTimeout}
}

// Handler serves GET /healthz (200 when the backend answers), GET/POST /faults (conflict_rate=0..1,
// seed=N: that fraction of commits fails with OC000, deterministically per seed), GET/POST /latency (profile=NAME:
// the endpoint's network and commit delays from then on), GET /stats (connections now, authenticated and refused
// since start, round trips and writing commits since start), GET /metrics (the same figures and the process's own, for a
// Prometheus-compatible scraper) and Go's profiles.
func Handler(server *proxy.Server, catalog *backend.Catalog) http.Handler {
	mux := http.NewServeMux()
	figures := figuresOf(server, catalog)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		figures.WritePrometheus(w)
		metrics.WriteProcessMetrics(w)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := catalog.Pool().Ping(ctx); err != nil {
			http.Error(w, "backend not answering", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, _ *http.Request) { writeFaults(w, server) })
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		accepted, refused := server.Authentications()
		roundTrips, commits := server.Latency.Counts()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"connections": server.ActiveConnections(), "authenticated": accepted, "refused_at_authentication": refused,
			"round_trips": roundTrips, "writing_commits": commits,
		})
	})
	mux.HandleFunc("GET /latency", func(w http.ResponseWriter, _ *http.Request) { writeLatency(w, server) })
	mux.HandleFunc("POST /latency", func(w http.ResponseWriter, r *http.Request) {
		profile, err := latency.Named(r.FormValue("profile"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		server.Latency.Set(profile)
		writeLatency(w, server)
	})
	mux.HandleFunc("POST /faults", func(w http.ResponseWriter, r *http.Request) {
		rate, err := strconv.ParseFloat(r.FormValue("conflict_rate"), 64)
		if err != nil || rate < 0 || rate > 1 {
			http.Error(w, "conflict_rate must be a number from 0 to 1", http.StatusBadRequest)
			return
		}
		seed, err := strconv.ParseInt(r.FormValue("seed"), 10, 64)
		if err != nil {
			seed = 1
		}
		server.Faults.Set(rate, seed)
		writeFaults(w, server)
	})
	// Profiles, for finding where the stand-in spends its time (the endpoint listens on loopback).
	mux.HandleFunc("GET /debug/pprof/", boundedProfile(pprof.Index)) // heap, goroutine...: ?seconds= for a delta
	mux.HandleFunc("GET /debug/pprof/profile", boundedProfile(pprof.Profile))
	return mux
}

// boundedProfile refuses a profile longer than MaxProfileSeconds, which pprof would let hold the
// connection (its write deadline moved out by as much) for as long as the client asked.
func boundedProfile(profile http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if value := r.FormValue("seconds"); value != "" {
			if seconds, err := strconv.ParseFloat(value, 64); err == nil && seconds > MaxProfileSeconds {
				http.Error(w, fmt.Sprintf("profiles last at most %d seconds", MaxProfileSeconds), http.StatusBadRequest)
				return
			}
		}
		profile(w, r)
	}
}

func writeFaults(w http.ResponseWriter, server *proxy.Server) {
	rate, seed, fired := server.Faults.State()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"conflict_rate": rate, "seed": seed, "injected": fired, "connections": server.ActiveConnections(),
	})
}

func writeLatency(w http.ResponseWriter, server *proxy.Server) {
	profile := server.Latency.Profile()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"profile": profile.Name, "round_trip_ms": durationMs(profile.RoundTrip), "commit_ms": durationMs(profile.Commit),
		"jitter": profile.Jitter,
	})
}

func durationMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// figuresOf reads the stand-in's state when scraped: client connections, authentications, injected
// conflicts and the backend pool.
func figuresOf(server *proxy.Server, catalog *backend.Catalog) *metrics.Set {
	set := metrics.NewSet()
	set.NewGauge("dsql_local_connections", func() float64 { return float64(server.ActiveConnections()) })
	set.NewGauge(`dsql_local_authentications_total{result="accepted"}`, func() float64 {
		accepted, _ := server.Authentications()
		return float64(accepted)
	})
	set.NewGauge(`dsql_local_authentications_total{result="refused"}`, func() float64 {
		_, refused := server.Authentications()
		return float64(refused)
	})
	set.NewGauge("dsql_local_injected_conflict_rate", func() float64 {
		rate, _, _ := server.Faults.State()
		return rate
	})
	set.NewGauge("dsql_local_injected_conflicts", func() float64 {
		_, _, fired := server.Faults.State()
		return float64(fired)
	})
	set.NewGauge("dsql_local_round_trips_total", func() float64 {
		roundTrips, _ := server.Latency.Counts()
		return float64(roundTrips)
	})
	set.NewGauge("dsql_local_writing_commits_total", func() float64 {
		_, commits := server.Latency.Counts()
		return float64(commits)
	})
	set.NewGauge("dsql_local_backend_connections", func() float64 { return float64(catalog.Pool().Stat().TotalConns()) })
	set.NewGauge("dsql_local_backend_connections_in_use", func() float64 {
		return float64(catalog.Pool().Stat().AcquiredConns())
	})
	return set
}

// openPaths answer without the key: supervisors' health checks and the metrics scraper carry none, and neither
// changes the stand-in nor tells more than the figures a scrape publishes anyway.
var openPaths = map[string]bool{"/healthz": true, "/metrics": true}

// RequireKey lets a request through to next only with `Authorization: Bearer <key>` (compared in constant time),
// apart from /healthz and /metrics: /faults can fail every commit, /latency slow every statement, and /stats and the profiles tell what runs.
// A page in a browser cannot set that header on a simple request, so it cannot reach them either.
func RequireKey(next http.Handler, key []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if openPaths[r.URL.Path] || (len(key) > 0 && bearerMatches(r.Header.Get("Authorization"), key)) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="dsql-local admin"`)
		http.Error(w, "this endpoint needs Authorization: Bearer <the stack's dsql-local admin key>", http.StatusUnauthorized)
	})
}

func bearerMatches(header string, key []byte) bool {
	scheme, token, found := strings.Cut(header, " ")
	return found && strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare([]byte(token), key) == 1
}
