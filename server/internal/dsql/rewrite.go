package dsql

import (
	"context"
	"database/sql/driver"
	"strings"
	"time"

	"go.temporal.io/server/common/metrics"
)

// rewrite turns upstream SQL that DSQL refuses into SQL it runs; everything else passes unchanged.
//
// DSQL has no FOR SHARE. Upstream takes it on two rows:
//   - the shard row, on every workflow write, to keep its range_id (the owner's fence) from changing
//     under the write. Under optimistic concurrency a plain read would not do: a new owner's range_id
//     bump would not conflict with the old owner's write, which would then commit stale. So it becomes
//     FOR UPDATE: a range_id change and a write of the old owner can no longer both commit, and replay
//     (below) rereads the shard row, sees the new range_id, and refuses the stale write. Writes of the
//     same owner that meet on the shard row are replayed, not failed.
//   - the execution row: a plain read is enough, because every write of it is fenced in its own WHERE
//     clause (db_record_version) and conflicts at commit anyway.
func rewrite(query string) string {
	const forShare = " FOR SHARE"
	trimmed := strings.TrimRight(query, " \n\t;")
	if !strings.HasSuffix(strings.ToUpper(trimmed), forShare) {
		return query
	}
	base := trimmed[:len(trimmed)-len(forShare)]
	if strings.HasPrefix(normalized(base), "SELECT range_id FROM shards WHERE") {
		return base + " FOR UPDATE"
	}
	return base
}

// rewritingConnector hands database/sql connections whose statements pass through rewrite.
type rewritingConnector struct {
	inner   driver.Connector
	metrics metrics.Handler
	onClose func() // when the pool over this connector closes (database/sql calls Close then)
}

func newRewritingConnector(inner driver.Connector, handler metrics.Handler) *rewritingConnector {
	return &rewritingConnector{inner: inner, metrics: handler}
}

func (c *rewritingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	record(c.metrics, connectsMetric, metrics.OutcomeTag(connectOutcome(err)))
	if err != nil {
		return nil, err
	}
	return &rewritingConn{Conn: conn, metrics: c.metrics}, nil
}

func (c *rewritingConnector) Driver() driver.Driver { return c.inner.Driver() }

func (c *rewritingConnector) Close() error {
	if c.onClose != nil {
		c.onClose()
	}
	return nil
}

// rewritingConn forwards every interface pgx's stdlib connection implements, so database/sql keeps
// using pgx's fast paths (direct Exec and Query, its own argument conversion).
type rewritingConn struct {
	driver.Conn
	recorder recorder // the open transaction's statements and results, for replay on a conflict
	metrics  metrics.Handler
}

var (
	_ driver.ExecerContext      = (*rewritingConn)(nil)
	_ driver.QueryerContext     = (*rewritingConn)(nil)
	_ driver.ConnPrepareContext = (*rewritingConn)(nil)
	_ driver.ConnBeginTx        = (*rewritingConn)(nil)
	_ driver.NamedValueChecker  = (*rewritingConn)(nil)
	_ driver.Pinger             = (*rewritingConn)(nil)
	_ driver.SessionResetter    = (*rewritingConn)(nil)
)

func (c *rewritingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	defer recordLatency(c.metrics, statementMetric, time.Now(), metrics.OperationTag(operationOf(query)))
	query = rewrite(query)
	query, args = withBufferedEventIDs(query, encodeTaskQueueIDs(query, args))
	execer := c.Conn.(driver.ExecerContext)
	result, err := execer.ExecContext(ctx, query, args)
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
	if tooManyRows(err) && !c.recorder.active {
		if batch, ok := batchedDelete(query); ok {
			return deleteInBatches(ctx, execer, batch, args)
		}
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

func (c *rewritingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	defer recordLatency(c.metrics, statementMetric, time.Now(), metrics.OperationTag(operationOf(query)))
	query = rewrite(query)
	args = encodeTaskQueueIDs(query, args)
	queryer := c.Conn.(driver.QueryerContext)
	rows, err := lockedQuery(ctx, queryer, query, args)
	for attempt := 0; isConflict(err) && attempt < maxReplays; attempt++ {
		if c.recorder.active && !c.recoverConflict(ctx, err, "statement") {
			return nil, err
		}
		if !c.recorder.active && c.retryAlone(ctx, err, attempt) != nil {
			return nil, err
		}
		rows, err = lockedQuery(ctx, queryer, query, args)
	}
	if err != nil {
		return nil, err
	}
	if !c.recorder.active {
		return decodeUUIDColumns(query, decodeTaskQueueIDs(rows)), nil
	}
	columns, values, err := readAll(rows) // read in full: replay compares it
	if err != nil {
		return nil, err
	}
	c.recorder.steps = append(c.recorder.steps, step{query: query, args: args, columns: columns, rows: values})
	return decodeUUIDColumns(query, decodeTaskQueueIDs(&memoryRows{columns: columns, rows: values})), nil
}

func (c *rewritingConn) endTransaction() { c.recorder = recorder{} }

func (c *rewritingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, rewrite(query))
}

func (c *rewritingConn) BeginTx(ctx context.Context, options driver.TxOptions) (driver.Tx, error) {
	defer recordLatency(c.metrics, statementMetric, time.Now(), metrics.OperationTag("begin"))
	tx, err := c.Conn.(driver.ConnBeginTx).BeginTx(ctx, options)
	if err != nil {
		return nil, err
	}
	c.recorder = recorder{active: true}
	return &replayingTx{conn: c, inner: tx}, nil
}

func (c *rewritingConn) CheckNamedValue(value *driver.NamedValue) error {
	return c.Conn.(driver.NamedValueChecker).CheckNamedValue(value)
}

func (c *rewritingConn) Ping(ctx context.Context) error { return c.Conn.(driver.Pinger).Ping(ctx) }

func (c *rewritingConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}
