package dsql

import (
	"context"
	"database/sql/driver"
	"strings"
)

// rewrite turns upstream SQL that DSQL refuses into SQL it runs; everything else passes unchanged.
//
// DSQL has no FOR SHARE. Upstream takes it on the shard and execution rows only to hold them stable while
// a transaction writes: under DSQL's optimistic concurrency a plain read does the same job, because
// every write that depends on it is fenced (the shard's range_id, the execution's db_record_version
// in the UPDATE's WHERE clause) and a concurrent writer makes one of the two commits fail.
func rewrite(query string) string {
	const forShare = " FOR SHARE"
	if trimmed := strings.TrimRight(query, " \n\t;"); strings.HasSuffix(strings.ToUpper(trimmed), forShare) {
		return trimmed[:len(trimmed)-len(forShare)]
	}
	return query
}

// rewritingConnector hands database/sql connections whose statements pass through rewrite.
type rewritingConnector struct{ inner driver.Connector }

func newRewritingConnector(inner driver.Connector) driver.Connector {
	return &rewritingConnector{inner}
}

func (c *rewritingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &rewritingConn{conn}, nil
}

func (c *rewritingConnector) Driver() driver.Driver { return c.inner.Driver() }

// rewritingConn forwards every interface pgx's stdlib connection implements, so database/sql keeps
// using pgx's fast paths (direct Exec and Query, its own argument conversion).
type rewritingConn struct{ driver.Conn }

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
	query = rewrite(query)
	query, args = withBufferedEventIDs(query, encodeTaskQueueIDs(query, args))
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, query, args)
}

func (c *rewritingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	query = rewrite(query)
	rows, err := lockedQuery(ctx, c.Conn.(driver.QueryerContext), query, encodeTaskQueueIDs(query, args))
	if err != nil {
		return nil, err
	}
	return decodeTaskQueueIDs(rows), nil
}

func (c *rewritingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, rewrite(query))
}

func (c *rewritingConn) BeginTx(ctx context.Context, options driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, options)
}

func (c *rewritingConn) CheckNamedValue(value *driver.NamedValue) error {
	return c.Conn.(driver.NamedValueChecker).CheckNamedValue(value)
}

func (c *rewritingConn) Ping(ctx context.Context) error { return c.Conn.(driver.Pinger).Ping(ctx) }

func (c *rewritingConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}
