package dsql

import (
	"strings"
	"testing"

	"go.temporal.io/server/common/persistence/sql/sqlplugin"
	"go.temporal.io/server/common/primitives"
)

func TestBufferedEventsGetIDs(t *testing.T) {
	namespace, run := primitives.NewUUID(), primitives.NewUUID()
	rows := []sqlplugin.BufferedEventsRow{
		{ShardID: 3, NamespaceID: namespace, WorkflowID: "w", RunID: run, Data: []byte("a"), DataEncoding: "Proto3"},
		{ShardID: 3, NamespaceID: namespace, WorkflowID: "w", RunID: run, Data: []byte("b"), DataEncoding: "Proto3"},
	}
	source := &idSource{salt: 9, micros: func() int64 { return 1000 }}
	query, args := bufferedEventsInsert(rows, source.next)
	want := "INSERT INTO buffered_events (id, shard_id, namespace_id, workflow_id, run_id, data, data_encoding) VALUES " +
		"(GREATEST($1, (SELECT coalesce(max(id), 0) + 1 FROM buffered_events WHERE shard_id = $2 AND " +
		"namespace_id = $3 AND workflow_id = $4 AND run_id = $5)), $2, $3, $4, $5, $6, $7), " +
		"(GREATEST($8, (SELECT coalesce(max(id), 0) + 2 FROM buffered_events WHERE shard_id = $9 AND " +
		"namespace_id = $10 AND workflow_id = $11 AND run_id = $12)), $9, $10, $11, $12, $13, $14)"
	if query != want {
		t.Fatalf("got  %s\nwant %s", query, want)
	}
	if len(args) != 14 || args[8] != int32(3) || args[13] != "Proto3" || string(args[12].([]byte)) != "b" {
		t.Fatalf("args %v", args)
	}
	first, second := args[0].(int64), args[7].(int64)
	if second <= first || first&0xff != 9 {
		t.Errorf("ids %d then %d: want increasing, with the salt in the low byte", first, second)
	}
	if strings.Count(query, "GREATEST") != len(rows) {
		t.Error("every row needs its id")
	}
}

func TestIDsIncreaseWhenTheClockStands(t *testing.T) {
	source := &idSource{salt: 7, micros: func() int64 { return 1000 }}
	a, b := source.next(), source.next()
	if b <= a || a&0xff != 7 || b&0xff != 7 {
		t.Fatalf("ids %d, %d", a, b)
	}
}
