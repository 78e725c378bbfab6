//go:build tools

// Package tools pins the helm-unittest command so `go build` can resolve it from this module.
package tools

import _ "github.com/helm-unittest/helm-unittest/cmd/helm-unittest"
