package dsql

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/server/common/metrics"
)

// Conflicts are handled below Temporal's core. Upstream turns any failed COMMIT into Unavailable, and the
// history shard then reloads itself; under DSQL's optimistic concurrency a conflict (40001: OC000 data,
// OC001 schema) is routine, so the plugin absorbs it: every statement of a transaction is recorded with
// its result (rows read, rows affected), and on a conflict the transaction is replayed in a fresh one,
// with jittered backoff. It commits only if every statement returns exactly what it returned before, so
// nothing the caller decided on has changed; otherwise the conflict goes back to the caller, unchanged.
// That is also what keeps a stale shard owner out: its fenced write (range_id in the WHERE clause) or
// its read of the shard row returns something else on replay, and the write is refused.

const (
	maxReplays     = 5
	replayBaseWait = 10 * time.Millisecond
	replayMaxWait  = 500 * time.Millisecond
)

// isConflict reports DSQL's optimistic-concurrency failure.
func isConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "40001"
}

func backoff(ctx context.Context, attempt int) error {
	wait := min(replayBaseWait<<attempt, replayMaxWait)
	timer := time.NewTimer(time.Duration(rand.Int64N(int64(wait)) + 1))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// step is one recorded statement of a transaction and what it returned.
type step struct {
	query    string
	args     []driver.NamedValue
	exec     bool
	affected int64
	columns  []string
	rows     [][]driver.Value
}

type recorder struct {
	active       bool
	begin        string // the transaction's BEGIN
	beginPending bool   // held back, not sent yet
	steps        []step
}

// memoryRows serves a result that was read in full (so it can be compared on replay).
type memoryRows struct {
	columns []string
	rows    [][]driver.Value
	next    int
}

func (r *memoryRows) Columns() []string { return r.columns }
func (r *memoryRows) Close() error      { return nil }
func (r *memoryRows) Next(dest []driver.Value) error {
	if r.next >= len(r.rows) {
		return io.EOF
	}
	copy(dest, r.rows[r.next])
	r.next++
	return nil
}

func readAll(rows driver.Rows) ([]string, [][]driver.Value, error) {
	defer rows.Close()
	columns := rows.Columns()
	var all [][]driver.Value
	for {
		values := make([]driver.Value, len(columns))
		if err := rows.Next(values); err == io.EOF {
			return columns, all, nil
		} else if err != nil {
			return nil, nil, err
		}
		for i, value := range values { // the driver may reuse its buffers between rows
			if raw, ok := value.([]byte); ok {
				values[i] = append([]byte(nil), raw...)
			}
		}
		all = append(all, values)
	}
}

func sameRows(a, b [][]driver.Value) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if !sameValue(a[i][j], b[i][j]) {
				return false
			}
		}
	}
	return true
}

func sameValue(a, b driver.Value) bool {
	switch x := a.(type) {
	case []byte:
		y, ok := b.([]byte)
		return ok && string(x) == string(y)
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	}
	return a == b
}

// replay runs the recorded transaction again in a fresh one; true if every statement returned what it
// did before (the transaction is then open, ready to commit).
func (c *replayingConn) replay(ctx context.Context) (bool, error) {
	execer, queryer := c.Conn.(driver.ExecerContext), c.Conn.(driver.QueryerContext)
	_, _ = execer.ExecContext(ctx, "ROLLBACK", nil) // the failed transaction, if the server kept it open
	if _, err := execer.ExecContext(ctx, c.recorder.begin, nil); err != nil {
		return false, err
	}
	c.recorder.beginPending = false // a BEGIN held back (begin.go) has now been sent
	for _, recorded := range c.recorder.steps {
		if recorded.exec {
			result, err := execer.ExecContext(ctx, recorded.query, recorded.args)
			if err != nil {
				return false, err
			}
			if affected, err := result.RowsAffected(); err != nil || affected != recorded.affected {
				return false, nil
			}
			continue
		}
		rows, err := queryer.QueryContext(ctx, recorded.query, recorded.args)
		if err != nil {
			return false, err
		}
		_, values, err := readAll(rows)
		if err != nil {
			return false, err
		}
		if !sameRows(values, recorded.rows) {
			return false, nil
		}
	}
	return true, nil
}

// recoverConflict replays the transaction after a conflict until it replays cleanly (true) or cannot.
func (c *replayingConn) recoverConflict(ctx context.Context, conflict error, at string) bool {
	c.countConflict(conflict, at)
	outcome := c.replayUntilSame(ctx)
	record(c.metrics, replaysMetric, metrics.OutcomeTag(outcome))
	return outcome == "replayed"
}

// retryAlone waits before a statement outside a transaction is tried again after a conflict.
func (c *replayingConn) retryAlone(ctx context.Context, conflict error, attempt int) error {
	c.countConflict(conflict, "statement")
	return backoff(ctx, attempt)
}

func (c *replayingConn) countConflict(conflict error, at string) {
	record(c.metrics, conflictsMetric, metrics.StringTag("code", conflictCodeOf(conflict)), metrics.StringTag("at", at))
}

// replayUntilSame is "replayed" when the transaction ran again with the same results, "changed" when a
// result differed (the conflict goes back to the caller), "failed" when the replays ran out or erred.
func (c *replayingConn) replayUntilSame(ctx context.Context) string {
	for attempt := 0; attempt < maxReplays; attempt++ {
		if backoff(ctx, attempt) != nil {
			return "failed"
		}
		same, err := c.replay(ctx)
		switch {
		case err == nil && same:
			return "replayed"
		case err != nil && isConflict(err):
			continue
		default:
			execer := c.Conn.(driver.ExecerContext)
			_, _ = execer.ExecContext(ctx, "ROLLBACK", nil)
			if err == nil {
				return "changed"
			}
			return "failed"
		}
	}
	return "failed"
}

// replayingTx commits, replaying the transaction on a conflict at COMMIT.
type replayingTx struct {
	conn *replayingConn
	ctx  context.Context // BeginTx's, as pgx's own transactions keep it
}

func (t *replayingTx) Commit() error {
	defer t.conn.endTransaction()
	if t.conn.recorder.beginPending { // no statement ran: there is nothing to commit
		return nil
	}
	defer recordLatency(t.conn.metrics, statementMetric, time.Now(), metrics.OperationTag("commit"))
	err := t.conn.endWith(t.ctx, "commit")
	for attempt := 0; isConflict(err) && attempt < maxReplays; attempt++ {
		if !t.conn.recoverConflict(t.ctx, err, "commit") {
			return err
		}
		err = t.conn.endWith(t.ctx, "commit")
	}
	return err
}

func (t *replayingTx) Rollback() error {
	defer t.conn.endTransaction()
	if t.conn.recorder.beginPending {
		return nil
	}
	defer recordLatency(t.conn.metrics, statementMetric, time.Now(), metrics.OperationTag("rollback"))
	return t.conn.endWith(t.ctx, "rollback")
}

// endWith sends COMMIT or ROLLBACK. A COMMIT the server answers with ROLLBACK (the transaction had failed)
// is an error, as in pgx's own transactions.
func (c *replayingConn) endWith(ctx context.Context, statement string) error {
	conn, ok := c.pgxConn()
	if !ok {
		_, err := c.Conn.(driver.ExecerContext).ExecContext(ctx, statement, nil)
		return err
	}
	tag, err := conn.Exec(ctx, statement)
	if err == nil && statement == "commit" && tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	if err != nil && conn.PgConn().TxStatus() != 'I' {
		// As pgx's own transactions do: a connection that may still hold the transaction is not used again.
		closing, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		_ = conn.Close(closing)
	}
	return err
}

// closeTimeout bounds the goodbye to a server whose transaction could not be ended.
const closeTimeout = 5 * time.Second
