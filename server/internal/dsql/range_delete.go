package dsql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// DSQL modifies at most 3,000 rows in one transaction. Upstream's range deletes (acknowledged history
// tasks, a deleted branch's history nodes, acknowledged queue messages) have no such bound; outside a
// transaction the plugin runs one that DSQL refuses for its size again as batches, each its own
// transaction, by primary key, until a batch deletes fewer rows than it may.
const deleteBatch = 2000

// The primary keys of the tables whose deletes can exceed the limit (the DSQL schema's).
var deleteKeys = map[string]string{
	"history_node":            "shard_id, tree_id, branch_id, node_id, txn_id",
	"history_immediate_tasks": "shard_id, category_id, task_id",
	"history_scheduled_tasks": "shard_id, category_id, visibility_timestamp, task_id",
	"transfer_tasks":          "shard_id, task_id",
	"timer_tasks":             "shard_id, visibility_timestamp, task_id",
	"replication_tasks":       "shard_id, task_id",
	"replication_tasks_dlq":   "source_cluster_name, shard_id, task_id",
	"visibility_tasks":        "shard_id, task_id",
	"queue_messages":          "queue_type, queue_name, queue_partition, message_id",
	"queue":                   "queue_type, message_id",
	"buffered_events":         "shard_id, namespace_id, workflow_id, run_id, id",
	"value_chunks":            "shard_id, kind, owner_a, owner_b, item, chunk_group, chunk",
}

func tooManyRows(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "54000" && strings.Contains(pgErr.Message, "row limit")
}

// batchedDelete is the batch form of `DELETE FROM t WHERE c`, or ok=false for any other statement.
func batchedDelete(query string) (string, bool) {
	text := normalized(query)
	upper := strings.ToUpper(text)
	if !strings.HasPrefix(upper, "DELETE FROM ") {
		return "", false
	}
	rest := text[len("DELETE FROM "):]
	table, condition, found := strings.Cut(rest, " ")
	if !found || !strings.HasPrefix(strings.ToUpper(condition), "WHERE ") {
		return "", false
	}
	key, known := deleteKeys[table]
	if !known {
		return "", false
	}
	return fmt.Sprintf("DELETE FROM %s WHERE (%s) IN (SELECT %s FROM %s %s LIMIT %d)", table, key, key, table,
		condition, deleteBatch), true
}

type rowsDeleted int64

func (r rowsDeleted) LastInsertId() (int64, error) { return 0, errors.New("no insert id") }
func (r rowsDeleted) RowsAffected() (int64, error) { return int64(r), nil }

func deleteInBatches(ctx context.Context, execer driver.ExecerContext, batch string, args []driver.NamedValue) (driver.Result, error) {
	var total int64
	for {
		result, err := execer.ExecContext(ctx, batch, args)
		if err != nil {
			return nil, err
		}
		deleted, err := result.RowsAffected()
		if err != nil {
			return nil, err
		}
		total += deleted
		if deleted < deleteBatch {
			return rowsDeleted(total), nil
		}
	}
}
