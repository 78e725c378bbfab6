package dsql

import (
	"context"
	"database/sql"

	"go.temporal.io/server/common/persistence/sql/sqlplugin"
)

// activity_info_maps: an activity's info holds its last heartbeat details and last failure, each up to
// limit.blobSize.error (2 MiB by default); over chunkSize it is stored in pieces filed under its scheduled
// event id, whose earlier pieces a replace removes first.

func activityInfoRef(shard int32, namespace, run []byte, scheduled int64) chunkRef {
	return chunkRef{shard: shard, kind: activityInfoChunks, ownerA: namespace, ownerB: run, item: scheduled}
}

func (t *tables) ReplaceIntoActivityInfoMaps(ctx context.Context, rows []sqlplugin.ActivityInfoMapsRow) (sql.Result, error) {
	if !anyNeedsChunks(rows, func(row sqlplugin.ActivityInfoMapsRow) []byte { return row.Data }) {
		return t.TableCRUD.ReplaceIntoActivityInfoMaps(ctx, rows)
	}
	var result sql.Result
	err := t.atomically(ctx, func(tx *tables) error {
		stored := make([]sqlplugin.ActivityInfoMapsRow, len(rows))
		for index, row := range rows {
			stored[index] = row
			if !needsChunks(row.Data) {
				continue
			}
			ref := activityInfoRef(row.ShardID, row.NamespaceID, row.RunID, row.ScheduleID)
			ref.group = randomGroup()
			if _, err := tx.sql.ExecContext(ctx, deleteItemChunksQuery, ref.shard, ref.kind, ref.ownerA, ref.ownerB,
				ref.item); err != nil {
				return err
			}
			var err error
			if stored[index].Data, stored[index].DataEncoding, err = tx.writeChunks(ctx, ref, row.Data,
				row.DataEncoding); err != nil {
				return err
			}
		}
		var err error
		result, err = tx.TableCRUD.ReplaceIntoActivityInfoMaps(ctx, stored)
		return err
	})
	return result, err
}

func (t *tables) SelectAllFromActivityInfoMaps(ctx context.Context, filter sqlplugin.ActivityInfoMapsAllFilter) ([]sqlplugin.ActivityInfoMapsRow, error) {
	rows, err := t.TableCRUD.SelectAllFromActivityInfoMaps(ctx, filter)
	if err != nil {
		return nil, err
	}
	for index := range rows {
		row := &rows[index]
		if !isChunked(row.DataEncoding) {
			continue
		}
		ref := activityInfoRef(filter.ShardID, filter.NamespaceID, filter.RunID, row.ScheduleID)
		if row.Data, row.DataEncoding, err = t.readChunks(ctx, ref, row.Data, row.DataEncoding); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

func (t *tables) DeleteFromActivityInfoMaps(ctx context.Context, filter sqlplugin.ActivityInfoMapsFilter) (sql.Result, error) {
	result, err := t.TableCRUD.DeleteFromActivityInfoMaps(ctx, filter)
	if err != nil || len(filter.ScheduleIDs) == 0 {
		return result, err
	}
	_, err = t.sql.ExecContext(ctx, deleteItemListChunksQuery, filter.ShardID, activityInfoChunks, filter.NamespaceID,
		filter.RunID, filter.ScheduleIDs)
	return result, err
}

func (t *tables) DeleteAllFromActivityInfoMaps(ctx context.Context, filter sqlplugin.ActivityInfoMapsAllFilter) (sql.Result, error) {
	result, err := t.TableCRUD.DeleteAllFromActivityInfoMaps(ctx, filter)
	if err != nil {
		return nil, err
	}
	_, err = t.sql.ExecContext(ctx, deleteOwnerChunksQuery, filter.ShardID, activityInfoChunks, filter.NamespaceID,
		filter.RunID)
	return result, err
}

func anyNeedsChunks[Row any](rows []Row, data func(Row) []byte) bool {
	for _, row := range rows {
		if needsChunks(data(row)) {
			return true
		}
	}
	return false
}
