package dsql

import (
	"testing"
	"time"
)

func TestTokenLifetimeFromTheEnvironment(t *testing.T) {
	env := map[string]string{}
	getenv := func(name string) string { return env[name] }
	if got, err := tokenLifetimeFrom(getenv); err != nil || got != tokenLifetime {
		t.Fatalf("unset: got %v, %v; want the default %v", got, err, tokenLifetime)
	}
	env["TEMPORAL_SQL_TOKEN_LIFETIME"] = "30s"
	if got, err := tokenLifetimeFrom(getenv); err != nil || got != 30*time.Second {
		t.Fatalf("30s: got %v, %v", got, err)
	}
	for _, bad := range []string{"soon", "0s", "500ms", "169h"} {
		env["TEMPORAL_SQL_TOKEN_LIFETIME"] = bad
		if _, err := tokenLifetimeFrom(getenv); err == nil {
			t.Errorf("%q: accepted, want an error naming the variable", bad)
		}
	}
}
