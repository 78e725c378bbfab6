package dsql

import (
	"context"

	"go.temporal.io/server/common/persistence/sql/sqlplugin"
)

// ReadLockShards: DSQL has no FOR SHARE, which upstream takes on the shard row on every workflow write, to
// keep its range_id (the owner's fence) from changing under the write. Under optimistic concurrency a plain
// read would not do: a new owner's range_id bump would not conflict with the old owner's write, which would
// then commit stale. So the row is locked FOR UPDATE (upstream's WriteLockShards): a range_id change and a
// write of the old owner can no longer both commit, and replay (replay.go) rereads the shard row, sees the
// new range_id, and refuses the stale write. Writes of the same owner that meet on the shard row are
// replayed, not failed.
func (t *tables) ReadLockShards(ctx context.Context, filter sqlplugin.ShardsFilter) (int64, error) {
	return t.TableCRUD.WriteLockShards(ctx, filter)
}
