package dsql

import (
	"context"
	"database/sql"

	"go.temporal.io/server/common/persistence"
	"go.temporal.io/server/common/persistence/sql/sqlplugin"
)

// Upstream locks a queue's last message with `message_id >= (subquery) FOR UPDATE`, which DSQL refuses (it
// locks only by equality on a table's whole key): the plugin reads the last id, then locks that one row by
// its whole key (none when the queue is empty: sql.ErrNoRows, as upstream's lock finds nothing then).

const (
	lastMessageQuery   = `SELECT max(message_id) FROM queue WHERE queue_type = $1`
	lockMessageQuery   = `SELECT message_id FROM queue WHERE queue_type = $1 AND message_id = $2 FOR UPDATE`
	lastMessageV2Query = `SELECT max(message_id) FROM queue_messages WHERE queue_type = $1 AND queue_name = $2 AND ` +
		`queue_partition = $3`
	lockMessageV2Query = `SELECT message_id FROM queue_messages WHERE queue_type = $1 AND queue_name = $2 AND ` +
		`queue_partition = $3 AND message_id = $4 FOR UPDATE`
)

// lockLastMessage reads the last message id of the queue named by key, then locks its row (the id bound
// after the key).
func (t *tables) lockLastMessage(ctx context.Context, last, lock string, key ...any) (int64, error) {
	var lastID sql.NullInt64
	if err := t.sql.GetContext(ctx, &lastID, last, key...); err != nil {
		return 0, err
	}
	if !lastID.Valid {
		return 0, sql.ErrNoRows
	}
	var locked int64
	err := t.sql.GetContext(ctx, &locked, lock, append(key, lastID.Int64)...)
	return locked, err
}

func (t *tables) GetLastEnqueuedMessageIDForUpdate(ctx context.Context, queueType persistence.QueueType) (int64, error) {
	return t.lockLastMessage(ctx, lastMessageQuery, lockMessageQuery, queueType)
}

func (t *tables) GetLastEnqueuedMessageIDForUpdateV2(ctx context.Context, filter sqlplugin.QueueV2Filter) (int64, error) {
	return t.lockLastMessage(ctx, lastMessageV2Query, lockMessageV2Query, filter.QueueType, filter.QueueName,
		filter.Partition)
}

// Acknowledged messages are deleted by range, which can be more rows than DSQL deletes at once.
var (
	messagesRange = keyRange{table: "queue", key: "queue_type, message_id",
		where: "queue_type = $1 AND message_id > $2 AND message_id <= $3"}
	messagesV2Range = keyRange{table: "queue_messages", key: "queue_type, queue_name, queue_partition, message_id",
		where: "queue_type = $1 AND queue_name = $2 AND queue_partition = $3 AND message_id >= $4 AND message_id <= $5"}
)

func (t *tables) RangeDeleteFromMessages(ctx context.Context, filter sqlplugin.QueueMessagesRangeFilter) (sql.Result, error) {
	result, err := t.TableCRUD.RangeDeleteFromMessages(ctx, filter)
	return t.inBatches(ctx, messagesRange, result, err, filter.QueueType, filter.MinMessageID, filter.MaxMessageID)
}

func (t *tables) RangeDeleteFromQueueV2Messages(ctx context.Context, filter sqlplugin.QueueV2MessagesFilter) (sql.Result, error) {
	result, err := t.TableCRUD.RangeDeleteFromQueueV2Messages(ctx, filter)
	return t.inBatches(ctx, messagesV2Range, result, err, filter.QueueType, filter.QueueName, filter.Partition,
		filter.MinMessageID, filter.MaxMessageID)
}
