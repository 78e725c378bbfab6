package conformance

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// healthy proves the stand-in still serves a well-behaved client, who sees its own committed data.
func healthy(t *testing.T, g *target) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var conn *pgx.Conn
	var err error
	for attempt := 0; attempt < 50; attempt++ { // past the connection-rate burst a moment may be needed
		if conn, err = g.connect(ctx, "", ""); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("the stand-in no longer serves a good client: %v", err)
	}
	defer conn.Close(ctx)
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 after the abuse: %v", err)
	}
}

// tlsConn opens a TLS session to the stand-in and returns it before any startup message.
func tlsConn(t *testing.T, g *target) net.Conn {
	t.Helper()
	raw, err := net.DialTimeout("tcp", net.JoinHostPort(g.host, g.port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	request := make([]byte, 8)
	binary.BigEndian.PutUint32(request[0:4], 8)
	binary.BigEndian.PutUint32(request[4:8], 80877103) // SSLRequest
	if _, err := raw.Write(request); err != nil {
		t.Fatal(err)
	}
	answer := make([]byte, 1)
	if _, err := raw.Read(answer); err != nil || answer[0] != 'S' {
		t.Fatalf("no TLS offered: %q %v", answer, err)
	}
	secure := tls.Client(raw, &tls.Config{RootCAs: g.roots, ServerName: g.endpoint})
	if err := secure.Handshake(); err != nil {
		t.Fatal(err)
	}
	return secure
}

func TestMalformedAndOversizedMessages(t *testing.T) {
	g := loadTarget(t)
	garbage := [][]byte{
		{0, 0, 0, 3},                                // a length shorter than its own field
		{0xff, 0xff, 0xff, 0xff, 0, 3, 0, 0},        // a startup packet claiming 4 GiB
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), // not PostgreSQL at all
		{0, 0, 0, 8, 0, 3, 0, 0},                    // a startup packet with no parameters (no user)
	}
	for _, payload := range garbage {
		conn := tlsConn(t, g)
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Write(payload)
		buffer := make([]byte, 512)
		_, _ = conn.Read(buffer) // an error response or a closed connection; never a hang
		conn.Close()
	}
	// After authentication: a frame announcing a 1 GiB query.
	ctx := context.Background()
	conn, err := g.connect(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	raw := conn.PgConn().Conn()
	frame := []byte{'Q', 0x40, 0, 0, 0}
	_, _ = raw.Write(frame)
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = raw.Read(make([]byte, 256))
	conn.Close(ctx)
	healthy(t, g)
}

func TestDisconnectMidTransactionRollsBack(t *testing.T) {
	g := loadTarget(t)
	ctx := context.Background()
	setup, err := g.connect(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close(ctx)
	_, _ = setup.Exec(ctx, "DROP TABLE IF EXISTS resilience_kv")
	if _, err := setup.Exec(ctx, "CREATE TABLE resilience_kv (k int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	defer setup.Exec(ctx, "DROP TABLE IF EXISTS resilience_kv") //nolint:errcheck
	if _, err := setup.Exec(ctx, "INSERT INTO resilience_kv VALUES (1, 'before')"); err != nil {
		t.Fatal(err)
	}
	quitter, err := g.connect(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, statement := range []string{"BEGIN", "UPDATE resilience_kv SET v = 'uncommitted' WHERE k = 1", "INSERT INTO resilience_kv VALUES (2, 'x')"} {
		if _, err := quitter.Exec(ctx, statement); err != nil {
			t.Fatal(err)
		}
	}
	quitter.PgConn().Conn().Close() // gone without COMMIT or Terminate
	// The row lock must be released and nothing of the transaction kept: a writer succeeds soon after.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := setup.Exec(ctx, "UPDATE resilience_kv SET v = 'after' WHERE k = 1")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned transaction still holds its row: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var rows int
	if err := setup.QueryRow(ctx, "SELECT count(*) FROM resilience_kv").Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("want 1 row (the abandoned insert rolled back), got %d (%v)", rows, err)
	}
	healthy(t, g)
}

func TestTenThousandRapidConnects(t *testing.T) {
	g := loadTarget(t)
	var refused, served, other atomic.Int64
	var wg sync.WaitGroup
	work := make(chan struct{}, 10000)
	for i := 0; i < 10000; i++ {
		work <- struct{}{}
	}
	close(work)
	for worker := 0; worker < 64; worker++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				raw, err := net.DialTimeout("tcp", net.JoinHostPort(g.host, g.port), 5*time.Second)
				if err != nil {
					other.Add(1)
					continue
				}
				_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
				request := make([]byte, 8)
				binary.BigEndian.PutUint32(request[0:4], 8)
				binary.BigEndian.PutUint32(request[4:8], 80877103)
				_, _ = raw.Write(request)
				answer := make([]byte, 1)
				if _, err := raw.Read(answer); err == nil && answer[0] == 'S' {
					served.Add(1)
				} else if err == nil && answer[0] == 'E' {
					refused.Add(1) // a refusal before TLS: too many connections authenticating at once (53300)
				} else {
					other.Add(1)
				}
				raw.Close()
			}
		}()
	}
	wg.Wait()
	t.Logf("10,000 connects: %d offered TLS, %d refused before TLS, %d other", served.Load(), refused.Load(), other.Load())
	if other.Load() > 0 {
		t.Errorf("%d connects neither served nor refused cleanly", other.Load())
	}
	// None of them showed a token, so none spent the connection-rate budget (100/s, burst 1,000): a good
	// client is let in at once, with no wait for the bucket to refill. (That the budget holds authenticated
	// connections to DSQL's rate is the proxy package's unit test, on a budget of 2.)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := g.connect(ctx, "", "")
	if err != nil {
		t.Fatalf("a good client right after 10,000 unauthenticated connects: %v", err)
	}
	conn.Close(ctx)
	healthy(t, g)
}
