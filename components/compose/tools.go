//go:build tools

// Package tools pins the docker compose command so `go build` can resolve it from this module.
package tools

import _ "github.com/docker/compose/v5/cmd"
