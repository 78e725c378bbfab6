package token

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

var creds = aws.Credentials{AccessKeyID: "AKIDLOCAL", SecretAccessKey: "local-secret"}

// presign makes a token the way the AWS SDKs do (a presigned GET with the scheme stripped).
func presign(t *testing.T, host, action string, at time.Time, expires int, c aws.Credentials) string {
	t.Helper()
	request, err := http.NewRequest(http.MethodGet, "https://"+host+"/?Action="+action+"&X-Amz-Expires="+itoa(expires), nil)
	if err != nil {
		t.Fatal(err)
	}
	signed, _, err := v4.NewSigner().PresignHTTP(context.Background(), c, request, emptySHA256, "dsql", "us-east-1", at)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(signed, "https://")
}

func itoa(n int) string { return strconv.Itoa(n) }

func verifier(now time.Time) *Verifier {
	return &Verifier{Host: "127.0.0.1", Region: "us-east-1", Credentials: creds, Now: func() time.Time { return now }}
}

func TestTokens(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	good := presign(t, "127.0.0.1", "DbConnectAdmin", now.Add(-time.Minute), 900, creds)
	cases := []struct {
		name, action, token string
		ok                  bool
	}{
		{"valid admin token", ActionAdmin, good, true},
		{"valid in aws-sdk-go-v2's form (no slash)", ActionAdmin, strings.Replace(good, "/?", "?", 1), true},
		{"valid role token", ActionRole, presign(t, "127.0.0.1", "DbConnect", now, 900, creds), true},
		{"another action", "", presign(t, "127.0.0.1", "DbConnectSuper", now, 900, creds), false},
		{"expired", "", presign(t, "127.0.0.1", "DbConnectAdmin", now.Add(-20*time.Minute), 900, creds), false},
		{"another host", "", presign(t, "db.example.com", "DbConnectAdmin", now, 900, creds), false},
		{"wrong secret", "", presign(t, "127.0.0.1", "DbConnectAdmin", now, 900,
			aws.Credentials{AccessKeyID: "AKIDLOCAL", SecretAccessKey: "other"}), false},
		{"tampered", "", strings.Replace(good, "X-Amz-Expires=900", "X-Amz-Expires=901", 1), false},
		{"malformed", "", "not a token", false},
		{"empty", "", "", false},
	}
	for _, c := range cases {
		action, err := verifier(now).Verify(c.token)
		if c.ok && (err != nil || action != c.action) {
			t.Errorf("%s: refused or wrong action %q: %v", c.name, action, err)
		}
		if !c.ok && !errors.Is(err, ErrRefused) {
			t.Errorf("%s: accepted", c.name)
		}
		if err != nil && c.token != "" && strings.Contains(err.Error(), c.token) {
			t.Errorf("%s: the refusal echoes the token", c.name)
		}
	}
}
