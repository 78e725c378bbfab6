package dsql

import (
	"context"
	"database/sql"

	"go.temporal.io/server/common/persistence/sql/sqlplugin"
)

// history_node: a batch of history events is one data value (up to system.transactionSizeLimit, 4 MiB by
// default); over chunkSize it is stored in pieces, filed under the node and its transaction id, so that
// upstream's overwrite of the same node (ON CONFLICT ... DO UPDATE) with a value in pieces replaces them. (An
// overwrite with a small value leaves the earlier pieces unread until the branch is deleted, which removes them;
// clearing them on every insert would cost every write a statement, for a case upstream meets only on a retry
// of the same batch.)

func historyNodeRef(shard int32, tree, branch []byte, node, txn int64) chunkRef {
	return chunkRef{shard: shard, kind: historyNodeChunks, ownerA: tree, ownerB: branch, item: node, group: txn}
}

func clearHistoryNodePieces(ctx context.Context, tx *tables, ref chunkRef) error {
	_, err := tx.deleteRange(ctx, groupPieces, ref.shard, ref.kind, ref.ownerA, ref.ownerB, ref.item, ref.group)
	return err
}

func (t *tables) InsertIntoHistoryNode(ctx context.Context, row *sqlplugin.HistoryNodeRow) (sql.Result, error) {
	value := func(row *sqlplugin.HistoryNodeRow) storedValue {
		return storedValue{&row.Data, &row.DataEncoding,
			historyNodeRef(row.ShardID, row.TreeID, row.BranchID, row.NodeID, row.TxnID)}
	}
	if !needsChunks(row.Data) { // upstream's own call, as upstream makes it (it negates row.TxnID in place)
		return t.TableCRUD.InsertIntoHistoryNode(ctx, row)
	}
	return insertWithPieces(ctx, t, []sqlplugin.HistoryNodeRow{*row}, value, clearHistoryNodePieces,
		func(tx *tables, rows []sqlplugin.HistoryNodeRow) (sql.Result, error) {
			return tx.TableCRUD.InsertIntoHistoryNode(ctx, &rows[0])
		})
}

func (t *tables) RangeSelectFromHistoryNode(ctx context.Context, filter sqlplugin.HistoryNodeSelectFilter) ([]sqlplugin.HistoryNodeRow, error) {
	return selectWithPieces(ctx, t, func(tx *tables) ([]sqlplugin.HistoryNodeRow, error) {
		return tx.TableCRUD.RangeSelectFromHistoryNode(ctx, filter)
	}, func(row *sqlplugin.HistoryNodeRow) storedValue {
		return storedValue{&row.Data, &row.DataEncoding,
			historyNodeRef(filter.ShardID, filter.TreeID, filter.BranchID, row.NodeID, row.TxnID)}
	})
}

// DeleteFromHistoryNode removes the row and its pieces in one transaction.
func (t *tables) DeleteFromHistoryNode(ctx context.Context, row *sqlplugin.HistoryNodeRow) (sql.Result, error) {
	ref := historyNodeRef(row.ShardID, row.TreeID, row.BranchID, row.NodeID, row.TxnID)
	var result sql.Result
	err := t.atomically(ctx, func(tx *tables) error {
		var err error
		if result, err = tx.TableCRUD.DeleteFromHistoryNode(ctx, row); err != nil {
			return err
		}
		return clearHistoryNodePieces(ctx, tx, ref)
	})
	return result, err
}

var historyNodesFrom = keyRange{table: "history_node", key: "shard_id, tree_id, branch_id, node_id, txn_id",
	where: "shard_id = $1 AND tree_id = $2 AND branch_id = $3 AND node_id >= $4"}

// RangeDeleteFromHistoryNode removes a branch's nodes from one on (a whole branch may be more rows than DSQL
// deletes at once), then their pieces. Rows go first: a failure in between leaves pieces no row refers to, which
// the caller's retry of the same delete removes, never a row without its pieces.
func (t *tables) RangeDeleteFromHistoryNode(ctx context.Context, filter sqlplugin.HistoryNodeDeleteFilter) (sql.Result, error) {
	result, err := t.TableCRUD.RangeDeleteFromHistoryNode(ctx, filter)
	result, err = t.inBatches(ctx, historyNodesFrom, result, err, filter.ShardID, filter.TreeID, filter.BranchID,
		filter.MinNodeID)
	if err != nil {
		return nil, err
	}
	_, err = t.deleteRange(ctx, itemsFromPieces, filter.ShardID, historyNodeChunks, filter.TreeID, filter.BranchID,
		filter.MinNodeID)
	return result, err
}
