package dsql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"reflect"
	"strings"
	"testing"
)

// echoConn is a server connection that keeps what it is sent and answers every query with one row.
type echoConn struct {
	driver.Conn
	sent []string
	args [][]driver.NamedValue
}

func (c *echoConn) ExecContext(_ context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	c.sent, c.args = append(c.sent, query), append(c.args, args)
	return rowsAffected(1), nil
}

func (c *echoConn) QueryContext(_ context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	c.sent, c.args = append(c.sent, query), append(c.args, args)
	return &memoryRows{columns: []string{"task_queue_id"}, rows: [][]driver.Value{{"00ff"}}}, nil
}

// The connection leaves SQL to the plugin's tables: what upstream would have sent DSQL reaches the server as it
// is, and a transaction's statements are recorded with their results for replay.
func TestStatementsReachTheServerAsWrittenAndAreRecorded(t *testing.T) {
	server := &echoConn{}
	conn := &replayingConn{Conn: server}
	ctx := context.Background()
	tx, err := conn.BeginTx(ctx, driver.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	query := "SELECT task_queue_id FROM tasks WHERE range_hash = $1 AND task_queue_id = $2 FOR SHARE"
	args := []driver.NamedValue{{Ordinal: 1, Value: int64(1)}, {Ordinal: 2, Value: []byte{0x00, 0xff}}}
	rows, err := conn.QueryContext(ctx, query, args)
	if err != nil {
		t.Fatal(err)
	}
	values := make([]driver.Value, 1)
	if err := rows.Next(values); err != nil || values[0] != "00ff" {
		t.Fatalf("read %v (%v), want the server's value as it is", values, err)
	}
	insert := "INSERT INTO buffered_events(shard_id, namespace_id, workflow_id, run_id, data, data_encoding) VALUES ($1, $2, $3, $4, $5, $6)"
	if _, err := conn.ExecContext(ctx, insert, nil); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(server.sent, []string{"begin", query, insert}) || !reflect.DeepEqual(server.args[1], args) {
		t.Fatalf("the server got %q with %v", server.sent, server.args)
	}
	steps := conn.recorder.steps
	if len(steps) != 2 || steps[0].query != query || !sameRows(steps[0].rows, [][]driver.Value{{"00ff"}}) ||
		!steps[1].exec || steps[1].affected != 1 {
		t.Fatalf("recorded %+v", steps)
	}
	if err := tx.Commit(); err != nil || conn.recorder.active {
		t.Fatalf("commit: %v; the record must end with the transaction", err)
	}
	if last := server.sent[len(server.sent)-1]; last != "commit" {
		t.Fatalf("the transaction ended with %q", last)
	}
}

// BEGIN waits for the transaction's first statement; a transaction that runs none sends nothing at all.
func TestATransactionWithoutStatementsSendsNothing(t *testing.T) {
	server := &echoConn{}
	conn := &replayingConn{Conn: server}
	for _, end := range []func(driver.Tx) error{driver.Tx.Commit, driver.Tx.Rollback} {
		tx, err := conn.BeginTx(context.Background(), driver.TxOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := end(tx); err != nil {
			t.Fatal(err)
		}
	}
	if len(server.sent) != 0 {
		t.Fatalf("sent %q for transactions without statements", server.sent)
	}
}

// A read-only transaction says so in its BEGIN; an isolation level DSQL does not run is refused at once.
func TestBeginFollowsTheTransactionsOptions(t *testing.T) {
	server := &echoConn{}
	conn := &replayingConn{Conn: server}
	ctx := context.Background()
	tx, err := conn.BeginTx(ctx, driver.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.QueryContext(ctx, "SELECT 1", nil); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(server.sent, []string{"begin read only", "SELECT 1", "rollback"}) {
		t.Fatalf("sent %q", server.sent)
	}
	_, err = conn.BeginTx(ctx, driver.TxOptions{Isolation: driver.IsolationLevel(sql.LevelSerializable)})
	if err == nil || !strings.Contains(err.Error(), "REPEATABLE READ") {
		t.Fatalf("a serializable transaction was not refused with DSQL's level named: %v", err)
	}
}
