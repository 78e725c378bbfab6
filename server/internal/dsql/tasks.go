package dsql

import (
	"context"
	"database/sql"

	"go.temporal.io/server/common/persistence/sql/sqlplugin"
)

// tasks and tasks_v2: upstream's own statements, with task_queue_id in hex (ids.go). Upstream's selects
// return no task_queue_id today; the rows are decoded all the same, so one that did could not come back hex.

func taskID(row *sqlplugin.TasksRow) *[]byte     { return &row.TaskQueueID }
func taskV2ID(row *sqlplugin.TasksRowV2) *[]byte { return &row.TaskQueueID }

func (t *tables) InsertIntoTasks(ctx context.Context, rows []sqlplugin.TasksRow) (sql.Result, error) {
	return t.TableCRUD.InsertIntoTasks(ctx, withIDs(rows, taskID, toHex))
}

func (t *tables) SelectFromTasks(ctx context.Context, filter sqlplugin.TasksFilter) ([]sqlplugin.TasksRow, error) {
	filter.TaskQueueID = toHex(filter.TaskQueueID)
	rows, err := t.TableCRUD.SelectFromTasks(ctx, filter)
	if err != nil {
		return nil, err
	}
	return rows, decodeIDs(rows, taskID, fromHex)
}

func (t *tables) DeleteFromTasks(ctx context.Context, filter sqlplugin.TasksFilter) (sql.Result, error) {
	filter.TaskQueueID = toHex(filter.TaskQueueID)
	return t.TableCRUD.DeleteFromTasks(ctx, filter)
}

func (t *tables) InsertIntoTasksV2(ctx context.Context, rows []sqlplugin.TasksRowV2) (sql.Result, error) {
	return t.TableCRUD.InsertIntoTasksV2(ctx, withIDs(rows, taskV2ID, toHex))
}

func (t *tables) SelectFromTasksV2(ctx context.Context, filter sqlplugin.TasksFilterV2) ([]sqlplugin.TasksRowV2, error) {
	filter.TaskQueueID = toHex(filter.TaskQueueID)
	rows, err := t.TableCRUD.SelectFromTasksV2(ctx, filter)
	if err != nil {
		return nil, err
	}
	return rows, decodeIDs(rows, taskV2ID, fromHex)
}

func (t *tables) DeleteFromTasksV2(ctx context.Context, filter sqlplugin.TasksFilterV2) (sql.Result, error) {
	filter.TaskQueueID = toHex(filter.TaskQueueID)
	return t.TableCRUD.DeleteFromTasksV2(ctx, filter)
}
