package proxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/temporal-dsql-deploy/dsql-local/internal/tlsca"
	"github.com/temporal-dsql-deploy/dsql-local/internal/token"
)

var testCredentials = aws.Credentials{AccessKeyID: "AKIDLOCAL", SecretAccessKey: "local-secret"}

// startTestServer runs a stand-in on an ephemeral loopback port whose backend is a closed port: a
// connection with a good token gets as far as the backend and is answered 08006 there.
func startTestServer(t *testing.T, rate float64, burst int, authenticating int64) (*Server, string) {
	t.Helper()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := closed.Addr().String()
	closed.Close()
	server, address, shutdown := serveTestServer(t, backend, rate, burst, authenticating)
	t.Cleanup(shutdown)
	return server, address
}

// serveTestServer runs a stand-in over the backend at backendAddress; shutdown ends Serve and returns when it has.
func serveTestServer(t *testing.T, backendAddress string, rate float64, burst int, authenticating int64) (*Server, string, func()) {
	t.Helper()
	tlsConfig, err := tlsca.ServerConfig(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(backendAddress)
	server := New(Config{
		TLS:            tlsConfig,
		Tokens:         &token.Verifier{Host: "127.0.0.1", Region: "us-east-1", Credentials: testCredentials, Now: time.Now},
		BackendConnect: fmt.Sprintf("host=%s port=%s user=nobody dbname=dsql sslmode=disable connect_timeout=2", host, port),
		MaxConnections: 100, ConnectRate: rate, ConnectBurst: burst, MaxLifetime: time.Hour,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	server.authenticatingLimit = authenticating
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = server.Serve(ctx, listener) }()
	return server, listener.Addr().String(), func() { cancel(); <-done }
}

func goodToken(t *testing.T) string {
	t.Helper()
	return tokenFor(t, "DbConnectAdmin")
}

// tokenFor is a valid token for the test server's endpoint and credentials, made for `action`.
func tokenFor(t *testing.T, action string) string {
	t.Helper()
	request, err := http.NewRequest(http.MethodGet, "https://127.0.0.1/?Action="+action+"&X-Amz-Expires=900", nil)
	if err != nil {
		t.Fatal(err)
	}
	signed, _, err := v4.NewSigner().PresignHTTP(context.Background(), testCredentials, request,
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "dsql", "us-east-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(signed, "https://")
}

// connectCode connects as a client would and returns the SQLSTATE it is refused with ("" if none).
func connectCode(t *testing.T, address, password string) string {
	t.Helper()
	code, err := tryConnect(address, password)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	return code
}

// tryConnect answers the SQLSTATE a connection attempt ended with ("" when it succeeded), or an error when it
// ended before any SQLSTATE, e.g. a refusal answered to the SSL request, where pgx reports only that TLS was
// refused.
func tryConnect(address, password string) (string, error) {
	code, _, err := tryConnectAs(address, "admin", password)
	return code, err
}

// tryConnectAs is tryConnect as `user`, with the refusal's message.
func tryConnectAs(address, user, password string) (string, string, error) {
	host, port, _ := net.SplitHostPort(address)
	config, err := pgconn.ParseConfig(fmt.Sprintf("host=%s port=%s user=%s dbname=postgres sslmode=require connect_timeout=5", host, port, user))
	if err != nil {
		return "", "", err
	}
	config.Password = password
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, config)
	if err == nil {
		conn.Close(ctx)
		return "", "", nil
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return "", "", err
	}
	return pgErr.Code, pgErr.Message, nil
}

func TestOnlyAuthenticatedConnectionsSpendTheRateBudget(t *testing.T) {
	server, address := startTestServer(t, 0.001, 2, maxAuthenticating) // a budget of 2, refilled once in 1,000 s
	for i := 0; i < 20; i++ {
		if code := connectCode(t, address, "127.0.0.1/?Action=DbConnectAdmin&X-Amz-Signature=bad"); code != "28P01" {
			t.Fatalf("bad token %d: want 28P01, got %q", i, code)
		}
	}
	// 20 bad tokens later the budget is whole: two good tokens pass it (and meet the absent backend).
	good := goodToken(t)
	for i := 0; i < 2; i++ {
		if code := connectCode(t, address, good); code != "08006" {
			t.Fatalf("good token %d after a flood of bad ones: want to reach the backend (08006), got %q", i, code)
		}
	}
	if code := connectCode(t, address, good); code != "53400" {
		t.Fatalf("a good token past the budget: want 53400, got %q", code)
	}
	if code := connectCode(t, address, "not-a-token"); code != "28P01" {
		t.Fatalf("with the budget spent a bad token is still refused as one: got %q", code)
	}
	if accepted, refused := server.Authentications(); accepted != 2 || refused != 21 {
		t.Fatalf("authentications: %d accepted, %d refused", accepted, refused)
	}
}

// openTLS opens a connection, asks for TLS and sends the startup message; it returns the client side
// after the server's request for a password.
func openTLS(t *testing.T, address string) (net.Conn, *pgproto3.Frontend) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", address, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	ssl, _ := (&pgproto3.SSLRequest{}).Encode(nil)
	if _, err := raw.Write(ssl); err != nil {
		t.Fatal(err)
	}
	answer := make([]byte, 1)
	if _, err := io.ReadFull(raw, answer); err != nil || answer[0] != 'S' {
		t.Fatalf("SSL request answered %q, %v", answer, err)
	}
	conn := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	frontend := pgproto3.NewFrontend(conn, conn)
	frontend.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": "admin", "database": "postgres"}})
	if err := frontend.Flush(); err != nil {
		t.Fatal(err)
	}
	if message, err := frontend.Receive(); err != nil {
		t.Fatal(err)
	} else if _, ok := message.(*pgproto3.AuthenticationCleartextPassword); !ok {
		t.Fatalf("want a password request, got %T", message)
	}
	return conn, frontend
}

func receiveError(t *testing.T, frontend *pgproto3.Frontend) *pgproto3.ErrorResponse {
	t.Helper()
	message, err := frontend.Receive()
	if err != nil {
		t.Fatalf("want an error response, got %v", err)
	}
	refusal, ok := message.(*pgproto3.ErrorResponse)
	if !ok {
		t.Fatalf("want an error response, got %T", message)
	}
	return refusal
}

func TestMessagesBeforeAuthenticationAreCappedSmall(t *testing.T) {
	_, address := startTestServer(t, 100, 1000, maxAuthenticating)

	// A password message that announces 1 MiB is refused on its header, before any of it is read
	// (with the 16 MiB allowance the stand-in waited for, and buffered, the whole body).
	conn, frontend := openTLS(t, address)
	header := []byte{'p', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(header[1:], 4+1<<20)
	start := time.Now()
	if _, err := conn.Write(header); err != nil {
		t.Fatal(err)
	}
	if refusal := receiveError(t, frontend); refusal.Code != "08P01" || !strings.Contains(refusal.Message, "too large") {
		t.Fatalf("an oversized password message: %+v", refusal)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("the refusal waited for the body")
	}

	// Just under the cap a password is read and checked as a token.
	_, frontend = openTLS(t, address)
	frontend.Send(&pgproto3.PasswordMessage{Password: strings.Repeat("x", preAuthMessageLen-1)})
	if err := frontend.Flush(); err != nil {
		t.Fatal(err)
	}
	if refusal := receiveError(t, frontend); refusal.Code != "28P01" {
		t.Fatalf("a password under the cap: %+v", refusal)
	}

	// A startup message over PostgreSQL's 10,000 bytes is refused by its length (the connection closes).
	raw, err := net.DialTimeout("tcp", address, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	startup := make([]byte, 8)
	binary.BigEndian.PutUint32(startup, 1<<20)
	binary.BigEndian.PutUint32(startup[4:], pgproto3.ProtocolVersion30)
	if _, err := raw.Write(startup); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("an oversized startup message: read %d, %v (want the connection closed)", n, err)
	}

	// A good token is as small as ever.
	if code := connectCode(t, address, goodToken(t)); code != "08006" {
		t.Fatalf("a good token: want to reach the backend (08006), got %q", code)
	}
}

func TestConnectionsAuthenticatingAtOnceAreBounded(t *testing.T) {
	_, address := startTestServer(t, 100, 1000, 2)
	var holders []net.Conn
	for i := 0; i < 2; i++ { // two connections that never finish the handshake hold both places
		conn, err := net.DialTimeout("tcp", address, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		holders = append(holders, conn)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", address, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		message, err := pgproto3.NewFrontend(conn, conn).Receive()
		conn.Close()
		if refusal, ok := message.(*pgproto3.ErrorResponse); err == nil && ok && refusal.Code == "53300" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a third connection while two authenticate: want 53300 at once, got %v %v", message, err)
		}
	}
	for _, conn := range holders {
		conn.Close()
	}
	// The server frees the holders' places when it notices they left, a moment after they close; until then
	// the refusal comes before TLS, so an attempt may fail without a SQLSTATE.
	deadline = time.Now().Add(5 * time.Second)
	for {
		code, err := tryConnect(address, goodToken(t))
		if err == nil && code == "08006" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the holders left: want to reach the backend (08006), got %q %v", code, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTokenActionMustMatchTheUser(t *testing.T) {
	_, address := startTestServer(t, 100, 100, maxAuthenticating)
	cases := []struct{ user, action, message string }{
		{"admin", "DbConnect", "Wrong user to action mapping. user: admin, action: DbConnect"},
		{"app", "DbConnectAdmin", "Wrong user to action mapping. user: app, action: DbConnectAdmin"},
	}
	for _, c := range cases {
		code, message, err := tryConnectAs(address, c.user, tokenFor(t, c.action))
		if err != nil {
			t.Fatalf("%s with %s: %v", c.user, c.action, err)
		}
		if code != "28000" || message != c.message {
			t.Errorf("%s with %s: want 28000 %q, got %s %q", c.user, c.action, c.message, code, message)
		}
	}
	// The right action gets past authentication (to the absent backend).
	if code := connectCode(t, address, tokenFor(t, "DbConnectAdmin")); code != "08006" {
		t.Errorf("admin with DbConnectAdmin: want to reach the backend (08006), got %q", code)
	}
}

// fakeBackend lets every connection in (trust authentication) and then reads until it goes, so that a client
// the stand-in admits reaches a session over it.
func fakeBackend(t *testing.T) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close() })
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				backend := pgproto3.NewBackend(conn, conn)
				if _, err := backend.ReceiveStartupMessage(); err != nil {
					return
				}
				backend.Send(&pgproto3.AuthenticationOk{})
				backend.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
				backend.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
				if backend.Flush() != nil {
					return
				}
				_, _ = io.Copy(io.Discard, conn)
			}()
		}
	}()
	return listener.Addr().String()
}

// A stop (SIGTERM) must end the clients' sessions, as DSQL closes connections: waiting for a pool that never lets
// go (Temporal's) would last until the supervisor's SIGKILL.
func TestShutdownEndsTheSessionsOfConnectedClients(t *testing.T) {
	_, address, shutdown := serveTestServer(t, fakeBackend(t), 100, 100, maxAuthenticating)
	t.Cleanup(shutdown) // a second call returns at once
	host, port, _ := net.SplitHostPort(address)
	config, err := pgconn.ParseConfig(fmt.Sprintf("host=%s port=%s user=admin dbname=postgres sslmode=require connect_timeout=5", host, port))
	if err != nil {
		t.Fatal(err)
	}
	config.Password = goodToken(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := pgconn.ConnectConfig(ctx, config)
	if err != nil {
		t.Fatalf("connecting through the stand-in: %v", err)
	}
	defer client.Close(ctx)
	stopped := make(chan struct{})
	go func() { shutdown(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("Serve still waited for a connected client 20 s after the stop")
	}
	if err := client.Exec(ctx, "select 1").Close(); err == nil {
		t.Fatal("the client's connection still answered after the stop")
	}
}
