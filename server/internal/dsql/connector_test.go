package dsql

import (
	"context"
	"strings"
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

// Only admin connects with DbConnectAdmin: every other role gets a DbConnect token, which DSQL honours only for a
// role mapped to the signing principal with AWS IAM GRANT.
func TestTokensAreMadeForTheRoleConnecting(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDPLAINLYFAKE00000")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "plainly-fake-secret")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	tokens, err := awsTokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for user, action := range map[string]string{"admin": "Action=DbConnectAdmin", "temporal_service": "Action=DbConnect&"} {
		token, err := tokens(context.Background(), "cluster.dsql.us-east-1.on.aws", "us-east-1", user)
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		if !strings.Contains(token, action) {
			t.Errorf("%s: want a token with %s, got one for %s", user, action, strings.SplitN(token, "&", 2)[0])
		}
	}
}

func TestRegionFromTheEndpointName(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	if got := regionFor("abcdefghijklmnopqrstuvwxyz.dsql.eu-west-1.on.aws"); got != "eu-west-1" {
		t.Errorf("got %q", got)
	}
	if got := regionFor("127.0.0.1"); got != "" {
		t.Errorf("got %q", got)
	}
	t.Setenv("AWS_REGION", "us-east-2")
	if got := regionFor("127.0.0.1"); got != "us-east-2" {
		t.Errorf("got %q", got)
	}
}

func TestLifetimeStaysUnderDSQLsHour(t *testing.T) {
	for range 100 {
		if got := jittered(0); got > maxLifetime || got < maxLifetime*8/10 {
			t.Fatalf("lifetime %v", got)
		}
		if got := jittered(2 * maxLifetime); got > maxLifetime {
			t.Fatalf("lifetime %v over the cap", got)
		}
	}
}
