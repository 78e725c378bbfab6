package dsql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/server/common/metrics/metricstest"
)

func TestConflictCodesComeFromDSQLsMessage(t *testing.T) {
	cases := map[string]error{
		"OC000":   &pgconn.PgError{Code: "40001", Message: "change conflicts with another transaction, please retry: (OC000)"},
		"OC001":   &pgconn.PgError{Code: "40001", Message: "schema has been updated by another transaction, please retry: (OC001)"},
		"40001":   &pgconn.PgError{Code: "40001", Message: "could not serialize access"},
		"unknown": errors.New("connection reset"),
	}
	for want, err := range cases {
		if got := conflictCodeOf(err); got != want {
			t.Errorf("conflictCodeOf(%v) = %q, want %q", err, got, want)
		}
	}
}

func TestConnectOutcomes(t *testing.T) {
	cases := map[string]error{
		"ok":        nil,
		"throttled": &pgconn.PgError{Code: "53400", Message: "unable to accept connection, rate exceeded"},
		"failed":    &pgconn.PgError{Code: "28P01", Message: "password authentication failed"},
	}
	for want, err := range cases {
		if got := connectOutcome(err); got != want {
			t.Errorf("connectOutcome(%v) = %q, want %q", err, got, want)
		}
	}
	if got := connectOutcome(&pgconn.PgError{Code: "53300"}); got != "throttled" {
		t.Errorf("too many connections: %q, want throttled", got)
	}
}

func TestOperationIsTheFirstKeyword(t *testing.T) {
	cases := map[string]string{
		"SELECT range_id FROM shards": "select", "  insert into x values ($1)": "insert",
		"UPDATE executions SET": "update", "DELETE FROM timer_tasks": "delete", "VACUUM": "other", "": "other",
	}
	for query, want := range cases {
		if got := operationOf(query); got != want {
			t.Errorf("operationOf(%q) = %q, want %q", query, got, want)
		}
	}
}

// conflictOnce fails its first Exec with DSQL's data conflict, then succeeds.
type conflictOnce struct {
	driver.Conn
	execs int
}

type rowsAffected int64

func (r rowsAffected) LastInsertId() (int64, error) { return 0, errors.New("none") }
func (r rowsAffected) RowsAffected() (int64, error) { return int64(r), nil }

func (c *conflictOnce) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	c.execs++
	if c.execs == 1 {
		return nil, &pgconn.PgError{Code: "40001", Message: "change conflicts with another transaction, please retry: (OC000)"}
	}
	return rowsAffected(1), nil
}

func TestAStatementsConflictAndLatencyAreRecorded(t *testing.T) {
	handler := metricstest.NewCaptureHandler()
	capture := handler.StartCapture()
	defer handler.StopCapture(capture)
	conn := &replayingConn{Conn: &conflictOnce{}, metrics: handler}

	if _, err := conn.ExecContext(context.Background(), "INSERT INTO namespaces VALUES ($1)", nil); err != nil {
		t.Fatalf("the statement should succeed when tried again: %v", err)
	}
	snapshot := capture.Snapshot()
	conflicts := snapshot[conflictsMetric]
	if len(conflicts) != 1 || conflicts[0].Tags["code"] != "OC000" || conflicts[0].Tags["at"] != "statement" {
		t.Fatalf("conflicts recorded: %+v, want one OC000 at a statement", conflicts)
	}
	latency := snapshot[statementMetric]
	if len(latency) != 1 || latency[0].Tags["operation"] != "insert" {
		t.Fatalf("statement latency recorded: %+v, want one insert", latency)
	}
}

// idleDriver hands out connections that do nothing, so a pool can be opened without a server.
type idleDriver struct{}
type idleConn struct{}

func (idleDriver) Open(string) (driver.Conn, error)               { return idleConn{}, nil }
func (idleConn) Prepare(string) (driver.Stmt, error)              { return nil, io.EOF }
func (idleConn) Close() error                                     { return nil }
func (idleConn) Begin() (driver.Tx, error)                        { return nil, io.EOF }
func (c idleDriver) Connect(context.Context) (driver.Conn, error) { return idleConn{}, nil }
func (c idleDriver) Driver() driver.Driver                        { return c }

func TestPoolFiguresAreTheSumOfTheLivePools(t *testing.T) {
	handler := metricstest.NewCaptureHandler()
	capture := handler.StartCapture()
	defer handler.StopCapture(capture)
	reporter := &poolReporter{handler: handler, pools: map[*sql.DB]int64{}}
	first, second := sql.OpenDB(idleDriver{}), sql.OpenDB(idleDriver{})
	defer first.Close()
	defer second.Close()
	first.SetMaxOpenConns(4)
	second.SetMaxOpenConns(6)
	held, err := first.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	reporter.pools[first], reporter.pools[second] = 0, 0

	reporter.report()
	reporter.remove(second)
	reporter.report()
	snapshot := capture.Snapshot()
	want := map[string][2]float64{poolMaxOpenMetric: {10, 4}, poolInUseMetric: {1, 1}, poolOpenMetric: {1, 1}}
	for name, values := range want {
		got := snapshot[name]
		if len(got) != 2 || got[0].Value != values[0] || got[1].Value != values[1] {
			t.Errorf("%s: %+v, want %v then %v", name, got, values[0], values[1])
		}
	}
}
