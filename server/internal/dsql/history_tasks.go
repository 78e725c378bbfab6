package dsql

import (
	"context"
	"database/sql"

	"go.temporal.io/server/common/persistence/sql/sqlplugin"
)

// History tasks are deleted by the range the queues have acknowledged, which can be more rows than DSQL
// deletes at once (range_delete.go).

var (
	immediateTasksRange = keyRange{table: "history_immediate_tasks", key: "shard_id, category_id, task_id",
		where: "shard_id = $1 AND category_id = $2 AND task_id >= $3 AND task_id < $4"}
	scheduledTasksRange = keyRange{table: "history_scheduled_tasks",
		key:   "shard_id, category_id, visibility_timestamp, task_id",
		where: "shard_id = $1 AND category_id = $2 AND visibility_timestamp >= $3 AND visibility_timestamp < $4"}
	transferTasksRange = keyRange{table: "transfer_tasks", key: "shard_id, task_id",
		where: "shard_id = $1 AND task_id >= $2 AND task_id < $3"}
	timerTasksRange = keyRange{table: "timer_tasks", key: "shard_id, visibility_timestamp, task_id",
		where: "shard_id = $1 AND visibility_timestamp >= $2 AND visibility_timestamp < $3"}
	replicationTasksRange = keyRange{table: "replication_tasks", key: "shard_id, task_id",
		where: "shard_id = $1 AND task_id >= $2 AND task_id < $3"}
	replicationDLQTasksRange = keyRange{table: "replication_tasks_dlq", key: "source_cluster_name, shard_id, task_id",
		where: "source_cluster_name = $1 AND shard_id = $2 AND task_id >= $3 AND task_id < $4"}
	visibilityTasksRange = keyRange{table: "visibility_tasks", key: "shard_id, task_id",
		where: "shard_id = $1 AND task_id >= $2 AND task_id < $3"}
)

func (t *tables) RangeDeleteFromHistoryImmediateTasks(ctx context.Context, filter sqlplugin.HistoryImmediateTasksRangeFilter) (sql.Result, error) {
	result, err := t.TableCRUD.RangeDeleteFromHistoryImmediateTasks(ctx, filter)
	return t.inBatches(ctx, immediateTasksRange, result, err, filter.ShardID, filter.CategoryID,
		filter.InclusiveMinTaskID, filter.ExclusiveMaxTaskID)
}

// The scheduled and timer tasks' bounds are bound in UTC, as upstream binds them: pgx writes a TIMESTAMP's
// wall clock, whatever its zone. (Upstream writes a zero time as 1000-01-01; a zero bound selects the same
// rows, there being none before that.)

func (t *tables) RangeDeleteFromHistoryScheduledTasks(ctx context.Context, filter sqlplugin.HistoryScheduledTasksRangeFilter) (sql.Result, error) {
	result, err := t.TableCRUD.RangeDeleteFromHistoryScheduledTasks(ctx, filter)
	return t.inBatches(ctx, scheduledTasksRange, result, err, filter.ShardID, filter.CategoryID,
		filter.InclusiveMinVisibilityTimestamp.UTC(), filter.ExclusiveMaxVisibilityTimestamp.UTC())
}

func (t *tables) RangeDeleteFromTransferTasks(ctx context.Context, filter sqlplugin.TransferTasksRangeFilter) (sql.Result, error) {
	result, err := t.TableCRUD.RangeDeleteFromTransferTasks(ctx, filter)
	return t.inBatches(ctx, transferTasksRange, result, err, filter.ShardID, filter.InclusiveMinTaskID,
		filter.ExclusiveMaxTaskID)
}

func (t *tables) RangeDeleteFromTimerTasks(ctx context.Context, filter sqlplugin.TimerTasksRangeFilter) (sql.Result, error) {
	result, err := t.TableCRUD.RangeDeleteFromTimerTasks(ctx, filter)
	return t.inBatches(ctx, timerTasksRange, result, err, filter.ShardID, filter.InclusiveMinVisibilityTimestamp.UTC(),
		filter.ExclusiveMaxVisibilityTimestamp.UTC())
}

func (t *tables) RangeDeleteFromReplicationTasks(ctx context.Context, filter sqlplugin.ReplicationTasksRangeFilter) (sql.Result, error) {
	result, err := t.TableCRUD.RangeDeleteFromReplicationTasks(ctx, filter)
	return t.inBatches(ctx, replicationTasksRange, result, err, filter.ShardID, filter.InclusiveMinTaskID,
		filter.ExclusiveMaxTaskID)
}

func (t *tables) RangeDeleteFromReplicationDLQTasks(ctx context.Context, filter sqlplugin.ReplicationDLQTasksRangeFilter) (sql.Result, error) {
	result, err := t.TableCRUD.RangeDeleteFromReplicationDLQTasks(ctx, filter)
	return t.inBatches(ctx, replicationDLQTasksRange, result, err, filter.SourceClusterName, filter.ShardID,
		filter.InclusiveMinTaskID, filter.ExclusiveMaxTaskID)
}

func (t *tables) RangeDeleteFromVisibilityTasks(ctx context.Context, filter sqlplugin.VisibilityTasksRangeFilter) (sql.Result, error) {
	result, err := t.TableCRUD.RangeDeleteFromVisibilityTasks(ctx, filter)
	return t.inBatches(ctx, visibilityTasksRange, result, err, filter.ShardID, filter.InclusiveMinTaskID,
		filter.ExclusiveMaxTaskID)
}
