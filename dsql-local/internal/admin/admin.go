// Package admin is the stand-in's HTTP side door: health for supervisors, fault injection for tests.
package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/temporal-dsql-deploy/dsql-local/internal/backend"
	"github.com/temporal-dsql-deploy/dsql-local/internal/proxy"
)

// Handler serves GET /healthz (200 when the backend answers), GET/POST /faults (conflict_rate=0..1,
// seed=N: that fraction of commits fails with OC000, deterministically per seed), GET /stats (connections now,
// authenticated and refused since start) and Go's profiles.
func Handler(server *proxy.Server, catalog *backend.Catalog) http.Handler {
	mux := http.NewServeMux()
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
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"connections": server.ActiveConnections(), "authenticated": accepted, "refused_at_authentication": refused,
		})
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
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	return mux
}

func writeFaults(w http.ResponseWriter, server *proxy.Server) {
	rate, seed, fired := server.Faults.State()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"conflict_rate": rate, "seed": seed, "injected": fired, "connections": server.ActiveConnections(),
	})
}
