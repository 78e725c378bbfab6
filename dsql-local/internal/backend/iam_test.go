package backend

import (
	"regexp"
	"strings"
	"testing"
)

func TestRolePasswordsDependOnTheRoleAndTheBackendPassword(t *testing.T) {
	one, err := NewRolePasswords("backend-secret")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := NewRolePasswords("backend-secret")
	other, _ := NewRolePasswords("another-secret")
	if one.For("app") != again.For("app") {
		t.Error("two stand-ins over one backend disagree on a role's password")
	}
	if one.For("app") == one.For("app2") || one.For("app") == other.For("app") {
		t.Error("a password does not change with the role or the backend password")
	}
	if len(one.For("app")) != 64 {
		t.Errorf("want a 64-character hex password, got %d characters", len(one.For("app")))
	}
	if _, err := NewRolePasswords(""); err == nil {
		t.Error("an empty backend password was taken: every role's password would be computable")
	}
}

// The verifier is PostgreSQL's text form (SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>), salted
// anew each time, and never holds the password.
func TestScramVerifiersArePostgreSQLsFormAndSalted(t *testing.T) {
	first, err := scramVerifier("p4ss")
	if err != nil {
		t.Fatal(err)
	}
	second, _ := scramVerifier("p4ss")
	shape := regexp.MustCompile(`^SCRAM-SHA-256\$4096:[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$`)
	if !shape.MatchString(first) {
		t.Fatalf("not PostgreSQL's verifier form: %s", first)
	}
	if first == second || strings.Contains(first, "p4ss") {
		t.Errorf("verifiers not salted anew, or holding the password: %s %s", first, second)
	}
}

func TestQuoteLiteralReadsTheSameWhateverTheStringSetting(t *testing.T) {
	cases := map[string]string{
		"plain":      "E'plain'",
		"it's":       `E'it\'s'`,
		`back\slash`: `E'back\\slash'`,
		`'; DROP --`: `E'\'; DROP --'`,
	}
	for value, want := range cases {
		if got := QuoteLiteral(value); got != want {
			t.Errorf("QuoteLiteral(%q) = %s, want %s", value, got, want)
		}
	}
}
