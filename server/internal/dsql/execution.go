package dsql

import (
	"context"
	"database/sql"
	"errors"

	"go.temporal.io/server/common/persistence/sql/sqlplugin"
)

// DSQL has no FOR SHARE, and takes FOR UPDATE only on one table with equality on its whole key. Upstream
// asks for both on an execution's rows; the plugin reads and locks them in forms DSQL runs, in the same
// transaction.

const (
	readExecutionVersionQuery = `SELECT db_record_version, next_event_id FROM executions ` +
		`WHERE shard_id = $1 AND namespace_id = $2 AND workflow_id = $3 AND run_id = $4`

	currentJoinExecutionsQuery = `SELECT ce.shard_id, ce.namespace_id, ce.workflow_id, ce.run_id, ` +
		`ce.create_request_id, ce.state, ce.status, ce.start_time, e.last_write_version, ce.data, ce.data_encoding ` +
		`FROM current_executions ce INNER JOIN executions e ON e.shard_id = ce.shard_id AND ` +
		`e.namespace_id = ce.namespace_id AND e.workflow_id = ce.workflow_id AND e.run_id = ce.run_id ` +
		`WHERE ce.shard_id = $1 AND ce.namespace_id = $2 AND ce.workflow_id = $3`
)

// ReadLockExecutions reads the execution row's versions without a lock: every write of the row is fenced in
// its own WHERE clause (db_record_version) and conflicts at commit anyway.
func (t *tables) ReadLockExecutions(ctx context.Context, filter sqlplugin.ExecutionsFilter) (int64, int64, error) {
	var version sqlplugin.ExecutionVersion
	err := t.sql.GetContext(ctx, &version, readExecutionVersionQuery, filter.ShardID, filter.NamespaceID,
		filter.WorkflowID, filter.RunID)
	return version.DBRecordVersion, version.NextEventID, err
}

// LockCurrentExecutionsJoinExecutions locks the current row on its key (upstream's LockCurrentExecutions),
// then reads the join; the execution row needs no lock of its own, for the reason ReadLockExecutions gives.
func (t *tables) LockCurrentExecutionsJoinExecutions(ctx context.Context, filter sqlplugin.CurrentExecutionsFilter) ([]sqlplugin.CurrentExecutionsRow, error) {
	if _, err := t.TableCRUD.LockCurrentExecutions(ctx, filter); errors.Is(err, sql.ErrNoRows) {
		return nil, nil // no current row: upstream's join finds nothing either
	} else if err != nil {
		return nil, err
	}
	query, args := currentJoin(filter)
	var rows []sqlplugin.CurrentExecutionsRow
	if err := t.sql.SelectContext(ctx, &rows, query, args...); err != nil {
		return nil, err
	}
	withArchetype(rows, filter)
	return rows, nil
}
