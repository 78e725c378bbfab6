package dsql

import (
	"context"
	"database/sql"

	"go.temporal.io/server/common/persistence/sql/sqlplugin"
)

// task_queues and task_queues_v2: upstream's own statements, with task_queue_id in hex (ids.go).

func taskQueueID(row *sqlplugin.TaskQueuesRow) *[]byte { return &row.TaskQueueID }

// hexTaskQueue is a copy of row with its id in hex (the caller's row keeps its own).
func hexTaskQueue(row *sqlplugin.TaskQueuesRow) *sqlplugin.TaskQueuesRow {
	stored := *row
	stored.TaskQueueID = toHex(row.TaskQueueID)
	return &stored
}

func hexTaskQueuesFilter(filter sqlplugin.TaskQueuesFilter) sqlplugin.TaskQueuesFilter {
	filter.TaskQueueID, filter.TaskQueueIDGreaterThan = toHex(filter.TaskQueueID), toHex(filter.TaskQueueIDGreaterThan)
	return filter
}

func (t *tables) InsertIntoTaskQueues(ctx context.Context, row *sqlplugin.TaskQueuesRow, v sqlplugin.MatchingTaskVersion) (sql.Result, error) {
	return t.TableCRUD.InsertIntoTaskQueues(ctx, hexTaskQueue(row), v)
}

func (t *tables) UpdateTaskQueues(ctx context.Context, row *sqlplugin.TaskQueuesRow, v sqlplugin.MatchingTaskVersion) (sql.Result, error) {
	return t.TableCRUD.UpdateTaskQueues(ctx, hexTaskQueue(row), v)
}

func (t *tables) SelectFromTaskQueues(ctx context.Context, filter sqlplugin.TaskQueuesFilter, v sqlplugin.MatchingTaskVersion) ([]sqlplugin.TaskQueuesRow, error) {
	rows, err := t.TableCRUD.SelectFromTaskQueues(ctx, hexTaskQueuesFilter(filter), v)
	if err != nil {
		return nil, err
	}
	return rows, decodeIDs(rows, taskQueueID, fromHex)
}

func (t *tables) DeleteFromTaskQueues(ctx context.Context, filter sqlplugin.TaskQueuesFilter, v sqlplugin.MatchingTaskVersion) (sql.Result, error) {
	return t.TableCRUD.DeleteFromTaskQueues(ctx, hexTaskQueuesFilter(filter), v)
}

func (t *tables) LockTaskQueues(ctx context.Context, filter sqlplugin.TaskQueuesFilter, v sqlplugin.MatchingTaskVersion) (int64, error) {
	return t.TableCRUD.LockTaskQueues(ctx, hexTaskQueuesFilter(filter), v)
}
