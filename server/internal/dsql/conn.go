package dsql

import (
	"context"
	"database/sql/driver"
	"time"

	"go.temporal.io/server/common/metrics"
)

// Below database/sql the plugin keeps only what belongs to a connection: its metrics, and the record of the
// open transaction that replay (replay.go) needs. Statements reach the server as the plugin's tables (and
// upstream's, under them) wrote them; the text is read only for the metrics' operation label.

// replayingConnector hands database/sql connections that record their transactions for replay.
type replayingConnector struct {
	inner   driver.Connector
	metrics metrics.Handler
	onClose func() // when the pool over this connector closes (database/sql calls Close then)
}

func newReplayingConnector(inner driver.Connector, handler metrics.Handler) *replayingConnector {
	return &replayingConnector{inner: inner, metrics: handler}
}

func (c *replayingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	record(c.metrics, connectsMetric, metrics.OutcomeTag(connectOutcome(err)))
	if err != nil {
		return nil, err
	}
	return &replayingConn{Conn: conn, metrics: c.metrics}, nil
}

func (c *replayingConnector) Driver() driver.Driver { return c.inner.Driver() }

func (c *replayingConnector) Close() error {
	if c.onClose != nil {
		c.onClose()
	}
	return nil
}

// replayingConn forwards every interface pgx's stdlib connection implements, so database/sql keeps
// using pgx's fast paths (direct Exec and Query, its own argument conversion).
type replayingConn struct {
	driver.Conn
	recorder  recorder     // the open transaction's statements and results, for replay on a conflict
	described descriptions // the statements sent with a held-back BEGIN (begin.go)
	metrics   metrics.Handler
}

var (
	_ driver.ExecerContext      = (*replayingConn)(nil)
	_ driver.QueryerContext     = (*replayingConn)(nil)
	_ driver.ConnPrepareContext = (*replayingConn)(nil)
	_ driver.ConnBeginTx        = (*replayingConn)(nil)
	_ driver.NamedValueChecker  = (*replayingConn)(nil)
	_ driver.Pinger             = (*replayingConn)(nil)
	_ driver.SessionResetter    = (*replayingConn)(nil)
)

func (c *replayingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	defer recordLatency(c.metrics, statementMetric, time.Now(), metrics.OperationTag(operationOf(query)))
	execer := c.Conn.(driver.ExecerContext)
	result, err := c.exec(ctx, query, args)
	for attempt := 0; isConflict(err) && attempt < maxReplays; attempt++ {
		// The statement had no effect; outside a transaction it is simply tried again, inside one after the
		// transaction so far has been replayed unchanged.
		if c.recorder.active && !c.recoverConflict(ctx, err, "statement") {
			return nil, err
		}
		if !c.recorder.active && c.retryAlone(ctx, err, attempt) != nil {
			return nil, err
		}
		result, err = execer.ExecContext(ctx, query, args)
	}
	if err != nil || !c.recorder.active {
		return result, err
	}
	affected, affectedErr := result.RowsAffected()
	if affectedErr != nil {
		return result, nil
	}
	c.recorder.steps = append(c.recorder.steps, step{query: query, args: args, exec: true, affected: affected})
	return result, nil
}

func (c *replayingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	defer recordLatency(c.metrics, statementMetric, time.Now(), metrics.OperationTag(operationOf(query)))
	queryer := c.Conn.(driver.QueryerContext)
	rows, err := c.query(ctx, query, args)
	for attempt := 0; isConflict(err) && attempt < maxReplays; attempt++ {
		if c.recorder.active && !c.recoverConflict(ctx, err, "statement") {
			return nil, err
		}
		if !c.recorder.active && c.retryAlone(ctx, err, attempt) != nil {
			return nil, err
		}
		rows, err = queryer.QueryContext(ctx, query, args)
	}
	if err != nil || !c.recorder.active {
		return rows, err
	}
	held, ok := rows.(*memoryRows) // a first statement's, read in full already
	if !ok {
		columns, values, err := readAll(rows) // read in full: replay compares it
		if err != nil {
			return nil, err
		}
		held = &memoryRows{columns: columns, rows: values}
	}
	c.recorder.steps = append(c.recorder.steps, step{query: query, args: args, columns: held.columns, rows: held.rows})
	return held, nil
}

// exec runs a statement once: a transaction's first carries the held-back BEGIN (begin.go).
func (c *replayingConn) exec(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	// Without arguments pgx sends a statement by the simple protocol (several statements in one text among
	// them), which a pipeline cannot carry: its BEGIN goes first, alone.
	result, ran, err := c.withPendingBegin(ctx, query, args, len(args) > 0)
	switch {
	case err != nil:
		return nil, err
	case ran:
		return result, nil
	}
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, query, args)
}

// query runs a query once: a transaction's first carries the held-back BEGIN (begin.go), and comes back read
// in full, as memoryRows.
func (c *replayingConn) query(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	result, ran, err := c.withPendingBegin(ctx, query, args, true)
	switch {
	case err != nil:
		return nil, err
	case ran:
		return &memoryRows{columns: result.columns, rows: result.rows}, nil
	}
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, query, args)
}

func (c *replayingConn) endTransaction() { c.recorder = recorder{} }

func (c *replayingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if err := c.sendPendingBegin(ctx); err != nil { // its statements run in the transaction, not with it
		return nil, err
	}
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
}

// BeginTx sends nothing yet: BEGIN goes with the transaction's first statement.
func (c *replayingConn) BeginTx(ctx context.Context, options driver.TxOptions) (driver.Tx, error) {
	if conn, ok := c.pgxConn(); ok && conn.IsClosed() {
		return nil, driver.ErrBadConn // database/sql begins again on another connection
	}
	begin, err := beginStatement(options)
	if err != nil {
		return nil, err
	}
	c.recorder = recorder{active: true, begin: begin, beginPending: true}
	return &replayingTx{conn: c, ctx: ctx}, nil
}

func (c *replayingConn) CheckNamedValue(value *driver.NamedValue) error {
	return c.Conn.(driver.NamedValueChecker).CheckNamedValue(value)
}

func (c *replayingConn) Ping(ctx context.Context) error { return c.Conn.(driver.Pinger).Ping(ctx) }

func (c *replayingConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}
