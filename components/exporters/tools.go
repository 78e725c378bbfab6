//go:build tools

// Package tools pins the exporters the local stack scrapes PostgreSQL and the search engine through, so
// `go build` can resolve them from this module.
package tools

import (
	_ "github.com/prometheus-community/elasticsearch_exporter"
	_ "github.com/prometheus-community/postgres_exporter/cmd/postgres_exporter"
)
