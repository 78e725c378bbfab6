package dsql

import (
	"context"
	"database/sql"

	"go.temporal.io/server/common/persistence/sql/sqlplugin"
)

// activity_info_maps: an activity's info holds its last heartbeat details and last failure, each up to
// limit.blobSize.error (2 MiB by default); over chunkSize it is stored in pieces filed under its scheduled
// event id, whose earlier pieces a replace with a value in pieces removes first. (A replace with a small value
// leaves them unread until the activity's row is deleted, which removes them: clearing them on every replace
// would cost every activity update a statement.)

func activityInfoValue(row *sqlplugin.ActivityInfoMapsRow) storedValue {
	ref := chunkRef{shard: row.ShardID, kind: activityInfoChunks, ownerA: row.NamespaceID, ownerB: row.RunID,
		item: row.ScheduleID, group: randomGroup()}
	return storedValue{&row.Data, &row.DataEncoding, ref}
}

func clearActivityPieces(ctx context.Context, tx *tables, ref chunkRef) error {
	_, err := tx.deleteRange(ctx, itemPieces, ref.shard, ref.kind, ref.ownerA, ref.ownerB, ref.item)
	return err
}

func (t *tables) ReplaceIntoActivityInfoMaps(ctx context.Context, rows []sqlplugin.ActivityInfoMapsRow) (sql.Result, error) {
	return insertWithPieces(ctx, t, rows, activityInfoValue, clearActivityPieces,
		func(tx *tables, rows []sqlplugin.ActivityInfoMapsRow) (sql.Result, error) {
			return tx.TableCRUD.ReplaceIntoActivityInfoMaps(ctx, rows)
		})
}

func (t *tables) SelectAllFromActivityInfoMaps(ctx context.Context, filter sqlplugin.ActivityInfoMapsAllFilter) ([]sqlplugin.ActivityInfoMapsRow, error) {
	return selectWithPieces(ctx, t, func(tx *tables) ([]sqlplugin.ActivityInfoMapsRow, error) {
		return tx.TableCRUD.SelectAllFromActivityInfoMaps(ctx, filter)
	}, func(row *sqlplugin.ActivityInfoMapsRow) storedValue {
		row.ShardID, row.NamespaceID, row.RunID = filter.ShardID, filter.NamespaceID, filter.RunID
		return activityInfoValue(row)
	})
}

func (t *tables) DeleteFromActivityInfoMaps(ctx context.Context, filter sqlplugin.ActivityInfoMapsFilter) (sql.Result, error) {
	result, err := t.TableCRUD.DeleteFromActivityInfoMaps(ctx, filter)
	if err != nil || len(filter.ScheduleIDs) == 0 {
		return result, err
	}
	_, err = t.deleteRange(ctx, itemListPieces, filter.ShardID, activityInfoChunks, filter.NamespaceID, filter.RunID,
		filter.ScheduleIDs)
	return result, err
}

func (t *tables) DeleteAllFromActivityInfoMaps(ctx context.Context, filter sqlplugin.ActivityInfoMapsAllFilter) (sql.Result, error) {
	result, err := t.TableCRUD.DeleteAllFromActivityInfoMaps(ctx, filter)
	if err != nil {
		return nil, err
	}
	_, err = t.deleteRange(ctx, ownerPieces, filter.ShardID, activityInfoChunks, filter.NamespaceID, filter.RunID)
	return result, err
}
