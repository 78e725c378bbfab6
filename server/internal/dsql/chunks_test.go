package dsql

import (
	"bytes"
	"context"
	"crypto/rand"
	"math"
	"testing"

	"go.temporal.io/server/common/persistence/sql/sqlplugin"
	"go.temporal.io/server/common/primitives"
)

func TestChunkHeaderRoundTrips(t *testing.T) {
	header := chunkHeader{length: 2_500_000, pieces: 3, crc: 0xdeadbeef, group: -42}
	decoded, err := decodeChunkHeader(header.encode())
	if err != nil || decoded != header {
		t.Fatalf("decoded %+v (%v), want %+v", decoded, err, header)
	}
	if _, err := decodeChunkHeader([]byte("short")); err == nil {
		t.Fatal("a 5-byte header was accepted")
	}
}

func TestOnlyValuesOverTheChunkSizeAreChunked(t *testing.T) {
	if needsChunks(make([]byte, chunkSize)) || !needsChunks(make([]byte, chunkSize+1)) {
		t.Fatalf("chunkSize %d is not the boundary", chunkSize)
	}
	if !isChunked(chunkedPrefix+"Proto3") || isChunked("Proto3") {
		t.Fatal("the chunked marker is not told apart from upstream's encoding")
	}
}

func randomBytes(t *testing.T, size int) []byte {
	t.Helper()
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	return data
}

// chunkRows counts what value_chunks holds for one owner.
func chunkRows(t *testing.T, db sqlplugin.DB, shard int32, kind chunkKind, ownerA, ownerB []byte) int {
	t.Helper()
	var count []int
	if err := db.(*database).sql.SelectContext(context.Background(), &count, `SELECT count(*) FROM value_chunks WHERE `+
		`shard_id = $1 AND kind = $2 AND owner_a = $3 AND owner_b = $4`, shard, kind, ownerA, ownerB); err != nil {
		t.Fatal(err)
	}
	return count[0]
}

// TestLiveHistoryNodeOverTheColumnLimit writes, overwrites, reads and deletes a 2.5 MB batch of history events,
// which DSQL (and dsql-local) refuse as one value.
func TestLiveHistoryNodeOverTheColumnLimit(t *testing.T) {
	db := upstreamDB(t)
	ctx := context.Background()
	shard, tree, branch := int32(7), primitives.NewUUID(), primitives.NewUUID()
	large := randomBytes(t, 2_500_000)
	for _, node := range []sqlplugin.HistoryNodeRow{
		{ShardID: shard, TreeID: tree, BranchID: branch, NodeID: 1, TxnID: 1, Data: randomBytes(t, 1_200_000), DataEncoding: "Proto3"},
		{ShardID: shard, TreeID: tree, BranchID: branch, NodeID: 1, TxnID: 1, Data: large, DataEncoding: "Proto3"}, // overwrite
		{ShardID: shard, TreeID: tree, BranchID: branch, NodeID: 5, TxnID: 2, Data: []byte("small"), DataEncoding: "Proto3"},
	} {
		if _, err := db.InsertIntoHistoryNode(ctx, &node); err != nil {
			t.Fatalf("inserting node %d (%d bytes): %v", node.NodeID, len(node.Data), err)
		}
	}
	if got := chunkRows(t, db, shard, historyNodeChunks, tree, branch); got != 3 {
		t.Fatalf("value_chunks holds %d pieces after the overwrite, want 3", got)
	}
	for _, reverse := range []bool{false, true} {
		rows, err := db.RangeSelectFromHistoryNode(ctx, sqlplugin.HistoryNodeSelectFilter{ShardID: shard, TreeID: tree,
			BranchID: branch, MinNodeID: 1, MinTxnID: math.MaxInt64, MaxNodeID: 10, MaxTxnID: math.MaxInt64, PageSize: 10,
			ReverseOrder: reverse})
		if err != nil || len(rows) != 2 {
			t.Fatalf("read %d rows (%v)", len(rows), err)
		}
		first := rows[0]
		if reverse {
			first = rows[1]
		}
		if !bytes.Equal(first.Data, large) || first.DataEncoding != "Proto3" || first.TxnID != 1 {
			t.Fatalf("the chunked node read back as %d bytes, %q, txn %d", len(first.Data), first.DataEncoding, first.TxnID)
		}
	}
	if _, err := db.RangeDeleteFromHistoryNode(ctx, sqlplugin.HistoryNodeDeleteFilter{ShardID: shard, TreeID: tree,
		BranchID: branch, MinNodeID: 1}); err != nil {
		t.Fatal(err)
	}
	if got := chunkRows(t, db, shard, historyNodeChunks, tree, branch); got != 0 {
		t.Fatalf("%d pieces outlived their node", got)
	}
}

// TestLiveBufferedEventsAndActivityInfosOverTheColumnLimit: a 1.5 MB buffered event between two small ones keeps
// its place, and an activity's 2 MB info is replaced, read and deleted with its pieces, in a transaction.
func TestLiveBufferedEventsAndActivityInfosOverTheColumnLimit(t *testing.T) {
	db := upstreamDB(t)
	ctx := context.Background()
	shard, namespace, run := int32(9), primitives.NewUUID(), primitives.NewUUID()
	events := [][]byte{[]byte("first"), randomBytes(t, 1_500_000), []byte("last")}
	key := sqlplugin.BufferedEventsFilter{ShardID: shard, NamespaceID: namespace, WorkflowID: "chunked", RunID: run}
	rows := make([]sqlplugin.BufferedEventsRow, 0, len(events))
	for _, event := range events {
		rows = append(rows, sqlplugin.BufferedEventsRow{ShardID: shard, NamespaceID: namespace, WorkflowID: "chunked",
			RunID: run, Data: event, DataEncoding: "Proto3"})
	}
	if _, err := db.InsertIntoBufferedEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	read, err := db.SelectFromBufferedEvents(ctx, key)
	if err != nil || len(read) != 3 {
		t.Fatalf("read %d buffered events (%v)", len(read), err)
	}
	for index, row := range read {
		if !bytes.Equal(row.Data, events[index]) || row.DataEncoding != "Proto3" {
			t.Fatalf("buffered event %d read back as %d bytes, %q", index, len(row.Data), row.DataEncoding)
		}
	}
	if _, err := db.DeleteFromBufferedEvents(ctx, key); err != nil {
		t.Fatal(err)
	}
	if got := chunkRows(t, db, shard, bufferedEventChunks, namespace, run); got != 0 {
		t.Fatalf("%d pieces outlived the buffered events", got)
	}

	info := randomBytes(t, 2_000_000)
	tx, err := db.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	activity := func(data []byte) []sqlplugin.ActivityInfoMapsRow {
		return []sqlplugin.ActivityInfoMapsRow{{ShardID: shard, NamespaceID: namespace, WorkflowID: "chunked",
			RunID: run, ScheduleID: 5, Data: data, DataEncoding: "Proto3"}}
	}
	for _, data := range [][]byte{randomBytes(t, 1_100_000), info} { // the second replaces the first's pieces
		if _, err := tx.ReplaceIntoActivityInfoMaps(ctx, activity(data)); err != nil {
			_ = tx.Rollback()
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	all := sqlplugin.ActivityInfoMapsAllFilter{ShardID: shard, NamespaceID: namespace, WorkflowID: "chunked", RunID: run}
	infos, err := db.SelectAllFromActivityInfoMaps(ctx, all)
	if err != nil || len(infos) != 1 || !bytes.Equal(infos[0].Data, info) || infos[0].DataEncoding != "Proto3" {
		t.Fatalf("read %d activity infos (%v)", len(infos), err)
	}
	if got := chunkRows(t, db, shard, activityInfoChunks, namespace, run); got != 2 {
		t.Fatalf("value_chunks holds %d pieces of the activity, want 2", got)
	}
	if _, err := db.DeleteFromActivityInfoMaps(ctx, sqlplugin.ActivityInfoMapsFilter{ShardID: shard,
		NamespaceID: namespace, WorkflowID: "chunked", RunID: run, ScheduleIDs: []int64{5}}); err != nil {
		t.Fatal(err)
	}
	if got := chunkRows(t, db, shard, activityInfoChunks, namespace, run); got != 0 {
		t.Fatalf("%d pieces outlived their activity", got)
	}
}
