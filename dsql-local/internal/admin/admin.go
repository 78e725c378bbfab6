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
// seed=N: that fraction of commits fails with OC000, deterministically per seed), GET/POST /latency (profile=NAME,
// optionally region=R: the endpoints' network and commit delays from then on), GET/POST /isolation (region=R,
// isolated=true|false: that Region's endpoint loses its peer and the witness, and refuses writing commits), GET
// /stats (connections now, authenticated and refused since start, round trips and writing commits since start,
// per endpoint and in all), GET /metrics (the same figures and the process's own, for a Prometheus-compatible
// scraper) and Go's profiles. The first of endpoints is the primary: the one a request naming no Region means
// where one is meant.
func Handler(endpoints []*proxy.Server, catalog *backend.Catalog) http.Handler {
	mux := http.NewServeMux()
	primary := endpoints[0] // the cluster's shared state (faults) is reached through any endpoint
	figures := figuresOf(endpoints, catalog)
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
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, _ *http.Request) { writeFaults(w, primary, endpoints) })
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, stats(endpoints)) })
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
		primary.Faults.Set(rate, seed)
		writeFaults(w, primary, endpoints)
	})
	mux.HandleFunc("GET /latency", func(w http.ResponseWriter, r *http.Request) {
		if chosen, ok := chosenEndpoints(w, r, endpoints, primary); ok {
			writeJSON(w, latencyOf(chosen[0]))
		}
	})
	mux.HandleFunc("POST /latency", func(w http.ResponseWriter, r *http.Request) {
		profile, err := latency.Named(r.FormValue("profile"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		chosen, ok := chosenEndpoints(w, r, endpoints, nil) // no Region named: every endpoint
		if !ok {
			return
		}
		for _, endpoint := range chosen {
			endpoint.Latency.Set(profile)
		}
		writeJSON(w, latencyOf(chosen[0]))
	})
	mux.HandleFunc("GET /isolation", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, isolation(endpoints)) })
	mux.HandleFunc("POST /isolation", func(w http.ResponseWriter, r *http.Request) {
		isolated, err := strconv.ParseBool(r.FormValue("isolated"))
		if err != nil || r.FormValue("region") == "" {
			http.Error(w, "give region=<an endpoint's Region> and isolated=true or false", http.StatusBadRequest)
			return
		}
		chosen, ok := chosenEndpoints(w, r, endpoints, nil)
		if !ok {
			return
		}
		chosen[0].SetIsolated(isolated)
		writeJSON(w, isolation(endpoints))
	})
	// Profiles, for finding where the stand-in spends its time (the endpoint listens on loopback).
	mux.HandleFunc("GET /debug/pprof/", boundedProfile(pprof.Index)) // heap, goroutine...: ?seconds= for a delta
	mux.HandleFunc("GET /debug/pprof/profile", boundedProfile(pprof.Profile))
	return mux
}

// chosenEndpoints are the endpoints a request's region= names: that Region's, or with none named, unnamed (the
// primary alone, or with nil every endpoint). An unknown Region is answered 400 with the Regions there are.
func chosenEndpoints(w http.ResponseWriter, r *http.Request, endpoints []*proxy.Server, unnamed *proxy.Server) ([]*proxy.Server, bool) {
	region := r.FormValue("region")
	if region == "" {
		if unnamed != nil {
			return []*proxy.Server{unnamed}, true
		}
		return endpoints, true
	}
	regions := make([]string, len(endpoints))
	for i, endpoint := range endpoints {
		if endpoint.Region() == region {
			return endpoints[i : i+1], true
		}
		regions[i] = endpoint.Region()
	}
	http.Error(w, fmt.Sprintf("no endpoint in Region %q: the stand-in serves %s", region, strings.Join(regions, ", ")), http.StatusBadRequest)
	return nil, false
}

func writeJSON(w http.ResponseWriter, value any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(value)
}

func latencyOf(endpoint *proxy.Server) map[string]any {
	profile := endpoint.Latency.Profile()
	return map[string]any{"region": endpoint.Region(), "profile": profile.Name, "round_trip_ms": durationMs(profile.RoundTrip),
		"commit_ms": durationMs(profile.Commit), "jitter": profile.Jitter}
}

func durationMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func isolation(endpoints []*proxy.Server) map[string]bool {
	isolated := map[string]bool{}
	for _, endpoint := range endpoints {
		isolated[endpoint.Region()] = endpoint.Isolated()
	}
	return isolated
}

// endpointStats are one endpoint's counts since start and its state.
type endpointStats struct {
	Connections    int64  `json:"connections"`
	RoundTrips     int64  `json:"round_trips"`
	WritingCommits int64  `json:"writing_commits"`
	Isolated       bool   `json:"isolated"`
	RefusedWrites  int64  `json:"refused_writes"` // writing commits refused while its Region was cut off
	Latency        string `json:"latency"`
}

// clusterStats are the counts in all (the fields a single endpoint always had) and per endpoint's Region.
type clusterStats struct {
	Connections    int64                    `json:"connections"`
	Authenticated  int64                    `json:"authenticated"`
	Refused        int64                    `json:"refused_at_authentication"`
	RoundTrips     int64                    `json:"round_trips"`
	WritingCommits int64                    `json:"writing_commits"`
	RoundTripsBy   map[string]int64         `json:"round_trips_by_kind"` // by the kind of each batch's last statement
	Endpoints      map[string]endpointStats `json:"endpoints"`
}

func stats(endpoints []*proxy.Server) clusterStats {
	all := clusterStats{Endpoints: map[string]endpointStats{}, RoundTripsBy: map[string]int64{}}
	for _, endpoint := range endpoints {
		accepted, refused := endpoint.Authentications()
		trips, commits := endpoint.Latency.Counts()
		one := endpointStats{Connections: endpoint.ActiveConnections(), RoundTrips: trips, WritingCommits: commits,
			Isolated: endpoint.Isolated(), RefusedWrites: endpoint.RefusedWrites(), Latency: endpoint.Latency.Profile().Name}
		all.Endpoints[endpoint.Region()] = one
		all.Connections, all.Authenticated, all.Refused = all.Connections+one.Connections, all.Authenticated+accepted, all.Refused+refused
		all.RoundTrips, all.WritingCommits = all.RoundTrips+trips, all.WritingCommits+commits
		for kind, count := range endpoint.RoundTripsByKind() {
			all.RoundTripsBy[kind] += count
		}
	}
	return all
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

func writeFaults(w http.ResponseWriter, primary *proxy.Server, endpoints []*proxy.Server) {
	rate, seed, fired := primary.Faults.State()
	writeJSON(w, map[string]any{"conflict_rate": rate, "seed": seed, "injected": fired, "connections": stats(endpoints).Connections})
}

// figuresOf reads the stand-in's state when scraped: client connections, authentications, round trips and
// writing commits (per Region), injected conflicts and the backend pool.
func figuresOf(endpoints []*proxy.Server, catalog *backend.Catalog) *metrics.Set {
	set := metrics.NewSet()
	set.NewGauge("dsql_local_connections", func() float64 { return float64(stats(endpoints).Connections) })
	set.NewGauge(`dsql_local_authentications_total{result="accepted"}`, func() float64 { return float64(stats(endpoints).Authenticated) })
	set.NewGauge(`dsql_local_authentications_total{result="refused"}`, func() float64 { return float64(stats(endpoints).Refused) })
	for _, endpoint := range endpoints {
		region := endpoint.Region()
		set.NewGauge(fmt.Sprintf(`dsql_local_round_trips_total{region=%q}`, region), func() float64 {
			trips, _ := endpoint.Latency.Counts()
			return float64(trips)
		})
		set.NewGauge(fmt.Sprintf(`dsql_local_writing_commits_total{region=%q}`, region), func() float64 {
			_, commits := endpoint.Latency.Counts()
			return float64(commits)
		})
		set.NewGauge(fmt.Sprintf(`dsql_local_region_isolated{region=%q}`, region), func() float64 {
			if endpoint.Isolated() {
				return 1
			}
			return 0
		})
	}
	faults := endpoints[0].Faults
	set.NewGauge("dsql_local_injected_conflict_rate", func() float64 {
		rate, _, _ := faults.State()
		return rate
	})
	set.NewGauge("dsql_local_injected_conflicts", func() float64 {
		_, _, fired := faults.State()
		return float64(fired)
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
// apart from /healthz and /metrics: /faults can fail every commit, /latency slow every statement, /isolation refuse
// every write, and /stats and the profiles tell what runs.
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
