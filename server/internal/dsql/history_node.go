package dsql

import (
	"context"
	"database/sql"

	"go.temporal.io/server/common/persistence/sql/sqlplugin"
)

// history_node: a batch of history events is one data value (up to system.transactionSizeLimit, 4 MiB by
// default); over chunkSize it is stored in pieces, filed under the node and its transaction id, so that
// upstream's overwrite of the same node (ON CONFLICT ... DO UPDATE) replaces its pieces too.

func historyNodeRef(shard int32, tree, branch []byte, node, txn int64) chunkRef {
	return chunkRef{shard: shard, kind: historyNodeChunks, ownerA: tree, ownerB: branch, item: node, group: txn}
}

func (t *tables) InsertIntoHistoryNode(ctx context.Context, row *sqlplugin.HistoryNodeRow) (sql.Result, error) {
	if !needsChunks(row.Data) {
		return t.TableCRUD.InsertIntoHistoryNode(ctx, row)
	}
	var result sql.Result
	err := t.atomically(ctx, func(tx *tables) error {
		ref := historyNodeRef(row.ShardID, row.TreeID, row.BranchID, row.NodeID, row.TxnID)
		if _, err := tx.sql.ExecContext(ctx, deleteGroupChunksQuery, ref.shard, ref.kind, ref.ownerA, ref.ownerB,
			ref.item, ref.group); err != nil {
			return err
		}
		stored := *row
		var err error
		if stored.Data, stored.DataEncoding, err = tx.writeChunks(ctx, ref, row.Data, row.DataEncoding); err != nil {
			return err
		}
		result, err = tx.TableCRUD.InsertIntoHistoryNode(ctx, &stored)
		return err
	})
	return result, err
}

func (t *tables) RangeSelectFromHistoryNode(ctx context.Context, filter sqlplugin.HistoryNodeSelectFilter) ([]sqlplugin.HistoryNodeRow, error) {
	rows, err := t.TableCRUD.RangeSelectFromHistoryNode(ctx, filter)
	if err != nil {
		return nil, err
	}
	for index := range rows {
		row := &rows[index]
		if !isChunked(row.DataEncoding) {
			continue
		}
		ref := historyNodeRef(filter.ShardID, filter.TreeID, filter.BranchID, row.NodeID, row.TxnID)
		if row.Data, row.DataEncoding, err = t.readChunks(ctx, ref, row.Data, row.DataEncoding); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// DeleteFromHistoryNode removes the row, then its pieces (a row without pieces is never left behind).
func (t *tables) DeleteFromHistoryNode(ctx context.Context, row *sqlplugin.HistoryNodeRow) (sql.Result, error) {
	ref := historyNodeRef(row.ShardID, row.TreeID, row.BranchID, row.NodeID, row.TxnID)
	result, err := t.TableCRUD.DeleteFromHistoryNode(ctx, row)
	if err != nil {
		return nil, err
	}
	_, err = t.sql.ExecContext(ctx, deleteGroupChunksQuery, ref.shard, ref.kind, ref.ownerA, ref.ownerB, ref.item,
		ref.group)
	return result, err
}

func (t *tables) RangeDeleteFromHistoryNode(ctx context.Context, filter sqlplugin.HistoryNodeDeleteFilter) (sql.Result, error) {
	result, err := t.TableCRUD.RangeDeleteFromHistoryNode(ctx, filter)
	if err != nil {
		return nil, err
	}
	_, err = t.sql.ExecContext(ctx, deleteItemsFromChunksQuery, filter.ShardID, historyNodeChunks, filter.TreeID,
		filter.BranchID, filter.MinNodeID)
	return result, err
}
