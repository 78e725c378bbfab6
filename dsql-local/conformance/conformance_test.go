// Package conformance runs cases.yaml against a running dsql-local and reports "N passed, N failed".
//
// It needs the stand-in's address and CA and the credentials it checks tokens against:
// DSQL_LOCAL_ADDR (host:port), DSQL_LOCAL_CA, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, and optionally
// DSQL_LOCAL_ENDPOINT (the host tokens are made for; default: the address's host), AWS_REGION and
// DSQL_LOCAL_IAM_PRINCIPAL (the stand-in's -iam-principal; `{principal}` in a case's SQL stands for it).
package conformance

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"gopkg.in/yaml.v3"
)

type step struct {
	Session  int    `yaml:"session"`
	SQL      string `yaml:"sql"`
	SQLState string `yaml:"sqlstate"`
	Message  string `yaml:"message"`
	Value    string `yaml:"value"`
	Column   string `yaml:"column"`
	User     string `yaml:"user"` // the session's role: a custom role connects with a DbConnect token
}

type conformanceCase struct {
	ID        string   `yaml:"id"`
	Source    string   `yaml:"source"`
	Deviation string   `yaml:"deviation"`
	Connect   string   `yaml:"connect"`
	User      string   `yaml:"user"` // the role a `connect` case connects as (default admin)
	SQLState  string   `yaml:"sqlstate"`
	Message   string   `yaml:"message"`
	Setup     []string `yaml:"setup"` // run as admin before the case (after its cleanup, for a clean start)
	Cleanup   []string `yaml:"cleanup"`
	Steps     []step   `yaml:"steps"`
}

type table struct {
	Fixtures []string          `yaml:"fixtures"`
	Cases    []conformanceCase `yaml:"cases"`
}

// target is the running stand-in under test.
type target struct {
	host, port, endpoint, region, principal string
	credentials                             aws.Credentials
	roots                                   *x509.CertPool
}

func loadTarget(t *testing.T) *target {
	t.Helper()
	address := os.Getenv("DSQL_LOCAL_ADDR")
	if address == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("DSQL_LOCAL_ADDR is not set: the conformance run needs a running dsql-local")
		}
		t.Skip("DSQL_LOCAL_ADDR is not set: no running dsql-local to check (nox -s integration runs this)")
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		t.Fatalf("DSQL_LOCAL_ADDR=%s: %v", address, err)
	}
	pem, err := os.ReadFile(os.Getenv("DSQL_LOCAL_CA"))
	if err != nil {
		t.Fatalf("DSQL_LOCAL_CA: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	endpoint := os.Getenv("DSQL_LOCAL_ENDPOINT")
	if endpoint == "" {
		endpoint = host
	}
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = "us-east-1"
	}
	principal := os.Getenv("DSQL_LOCAL_IAM_PRINCIPAL")
	if principal == "" {
		principal = "arn:aws:iam::000000000000:role/dsql-local" // dsql-local's default
	}
	return &target{host: host, port: port, endpoint: endpoint, region: region, roots: roots, principal: principal,
		credentials: aws.Credentials{AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"), SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY")}}
}

// token makes an IAM auth token the way the AWS SDKs do: a presigned GET without its scheme.
func (g *target) token(host, action string, at time.Time, credentials aws.Credentials) string {
	request, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://%s/?Action=%s&X-Amz-Expires=900", host, action), nil)
	signed, _, err := v4.NewSigner().PresignHTTP(context.Background(), credentials, request,
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "dsql", g.region, at)
	if err != nil {
		panic(err)
	}
	return strings.TrimPrefix(signed, "https://")
}

// config builds a connection config for `user` (admin when empty, with a DbConnectAdmin token; a custom role
// with a DbConnect token); variant selects a deliberately bad one.
func (g *target) config(variant, user string) *pgx.ConnConfig {
	if user == "" {
		user = "admin"
	}
	config, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s dbname=postgres connect_timeout=10", g.host, g.port))
	if err != nil {
		panic(err)
	}
	config.User = user
	config.TLSConfig = &tls.Config{RootCAs: g.roots, ServerName: g.endpoint}
	config.Fallbacks = nil
	now := time.Now()
	action := "DbConnectAdmin"
	if user != "admin" {
		action = "DbConnect"
	}
	config.Password = g.token(g.endpoint, action, now, g.credentials)
	switch variant {
	case "plaintext":
		config.TLSConfig = nil
	case "expired":
		config.Password = g.token(g.endpoint, "DbConnectAdmin", now.Add(-20*time.Minute), g.credentials)
	case "wrong_host":
		config.Password = g.token("db.example.com", "DbConnectAdmin", now, g.credentials)
	case "wrong_secret":
		config.Password = g.token(g.endpoint, "DbConnectAdmin", now, aws.Credentials{AccessKeyID: g.credentials.AccessKeyID, SecretAccessKey: "not-the-secret"})
	case "malformed":
		config.Password = "not-a-token"
	case "role_action": // the other kind of token than the user needs
		config.Password = g.token(g.endpoint, map[string]string{"DbConnect": "DbConnectAdmin", "DbConnectAdmin": "DbConnect"}[action], now, g.credentials)
	case "other_database":
		config.Database = "other"
	}
	return config
}

func (g *target) connect(ctx context.Context, variant, user string) (*pgx.Conn, error) {
	return pgx.ConnectConfig(ctx, g.config(variant, user))
}

func sqlState(err error) (string, string) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code, pgErr.Message
	}
	return "", ""
}

func loadTable(t *testing.T) table {
	t.Helper()
	raw, err := os.ReadFile("cases.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var parsed table
	if err := yaml.Unmarshal(raw, &parsed); err != nil {
		t.Fatalf("cases.yaml: %v", err)
	}
	return parsed
}

// run executes one case; it returns "" when the stand-in did what the case says.
func (g *target) run(ctx context.Context, c conformanceCase) string {
	if err := g.admin(ctx, g.expand(c.Setup), false); err != nil {
		return fmt.Sprintf("setup: %v", err)
	}
	if c.Connect != "" {
		conn, err := g.connect(ctx, c.Connect, c.User)
		if conn != nil {
			defer conn.Close(ctx)
		}
		code, message := sqlState(err)
		if c.SQLState == "" && err != nil {
			return fmt.Sprintf("connection refused: %v", err)
		}
		if c.SQLState != "" && code != c.SQLState {
			return fmt.Sprintf("connection: want SQLSTATE %s, got %q (%v)", c.SQLState, code, err)
		}
		if c.Message != "" && !strings.Contains(message, c.Message) {
			return fmt.Sprintf("connection: message %q lacks %q", message, c.Message)
		}
		if err != nil && strings.Contains(err.Error(), "X-Amz-Signature") {
			return "the refusal echoes the token"
		}
		return ""
	}
	sessions := map[int]*pgx.Conn{}
	defer func() {
		for _, conn := range sessions {
			conn.Close(ctx)
		}
	}()
	for number, s := range c.Steps {
		session := max(s.Session, 1)
		if sessions[session] == nil {
			conn, err := g.connect(ctx, "", s.User)
			if err != nil {
				return fmt.Sprintf("session %d: %v", session, err)
			}
			sessions[session] = conn
		}
		value, column, err := execute(ctx, sessions[session], g.expand([]string{s.SQL})[0])
		code, message := sqlState(err)
		where := fmt.Sprintf("step %d (%s)", number+1, s.SQL)
		switch {
		case s.SQLState == "" && err != nil:
			return fmt.Sprintf("%s: want success, got %v", where, err)
		case s.SQLState != "" && code != s.SQLState:
			return fmt.Sprintf("%s: want SQLSTATE %s, got %q (%v)", where, s.SQLState, code, err)
		case s.Message != "" && !strings.Contains(message, s.Message):
			return fmt.Sprintf("%s: message %q lacks %q", where, message, s.Message)
		case s.Value != "" && value != s.Value:
			return fmt.Sprintf("%s: want value %q, got %q", where, s.Value, value)
		case s.Column != "" && (column != s.Column || value == ""):
			return fmt.Sprintf("%s: want a %s column, got %q = %q", where, s.Column, column, value)
		}
	}
	return ""
}

// execute runs one statement and returns its first value and first column's name.
func execute(ctx context.Context, conn *pgx.Conn, sql string) (string, string, error) {
	rows, err := conn.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return "", "", err
	}
	defer rows.Close()
	var value, column string
	if fields := rows.FieldDescriptions(); len(fields) > 0 {
		column = fields[0].Name
	}
	if rows.Next() {
		values, err := rows.Values()
		if err == nil && len(values) > 0 {
			value = fmt.Sprint(values[0])
		}
	}
	for rows.Next() {
	}
	return value, column, rows.Err()
}

// expand puts the stand-in's IAM principal where statements say {principal}.
func (g *target) expand(statements []string) []string {
	expanded := make([]string, len(statements))
	for i, statement := range statements {
		expanded[i] = strings.ReplaceAll(statement, "{principal}", g.principal)
	}
	return expanded
}

func (g *target) admin(ctx context.Context, statements []string, ignoreErrors bool) error {
	if len(statements) == 0 {
		return nil
	}
	conn, err := g.connect(ctx, "", "")
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, statement := range statements {
		if _, err := conn.Exec(ctx, statement); err != nil && !ignoreErrors {
			return fmt.Errorf("%s: %w", statement, err)
		}
	}
	return nil
}

func TestConformance(t *testing.T) {
	g := loadTarget(t)
	cases := loadTable(t)
	ctx := context.Background()
	var drops []string
	for _, fixture := range cases.Fixtures {
		if words := strings.Fields(fixture); len(words) > 2 && strings.EqualFold(words[0], "CREATE") {
			drops = append(drops, "DROP TABLE IF EXISTS "+words[2])
		}
	}
	if err := g.admin(ctx, drops, true); err != nil {
		t.Fatal(err)
	}
	if err := g.admin(ctx, cases.Fixtures, false); err != nil {
		t.Fatalf("fixtures: %v", err)
	}
	passed, failed, deviations := 0, 0, 0
	for _, c := range cases.Cases {
		if c.Source == "" {
			t.Errorf("%s: no source page", c.ID)
		}
		_ = g.admin(ctx, g.expand(c.Cleanup), true) // what an interrupted earlier run may have left
		problem := g.run(ctx, c)
		_ = g.admin(ctx, g.expand(c.Cleanup), true)
		if problem != "" {
			failed++
			t.Errorf("%s: %s", c.ID, problem)
			continue
		}
		passed++
		if c.Deviation != "" {
			deviations++
		}
	}
	_ = g.admin(ctx, drops, true)
	fmt.Printf("conformance: %d passed, %d failed (%d cases, %d with a documented deviation)\n",
		passed, failed, len(cases.Cases), deviations)
	if len(cases.Cases) < 80 {
		t.Errorf("the table has %d cases; it must keep at least 80", len(cases.Cases))
	}
}
