//go:build tools

// Package tools pins the process-compose command so `go build` can resolve it from this module.
package tools

import _ "github.com/f1bonacc1/process-compose"
