package dsql

import (
	"context"
	"database/sql/driver"
	"reflect"
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

func (c *echoConn) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) { return c, nil }
func (c *echoConn) Commit() error                                                { return nil }
func (c *echoConn) Rollback() error                                              { return nil }

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
	if !reflect.DeepEqual(server.sent, []string{query, insert}) || !reflect.DeepEqual(server.args[0], args) {
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
}
