package dsql

import (
	"database/sql/driver"
	"strings"
	"testing"
)

func TestForShareIsRewritten(t *testing.T) {
	cases := map[string]string{
		"SELECT range_id FROM shards WHERE shard_id = $1 FOR SHARE":                "SELECT range_id FROM shards WHERE shard_id = $1 FOR UPDATE",
		"SELECT range_id FROM shards WHERE shard_id = $1 FOR UPDATE":               "SELECT range_id FROM shards WHERE shard_id = $1 FOR UPDATE",
		"SELECT db_record_version FROM executions WHERE shard_id = $1 for share\n": "SELECT db_record_version FROM executions WHERE shard_id = $1",
	}
	for in, want := range cases {
		if got := rewrite(in); got != want {
			t.Errorf("rewrite(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBufferedEventsGetIDs(t *testing.T) {
	query := "INSERT INTO buffered_events(shard_id, namespace_id, workflow_id, run_id, data, data_encoding)\n VALUES ($1, $2, $3, $4, $5, $6),($7, $8, $9, $10, $11, $12)"
	args := make([]driver.NamedValue, 12)
	got, withIDs := withBufferedEventIDs(query, args)
	if len(withIDs) != 14 {
		t.Fatalf("want two id parameters added, got %d args", len(withIDs))
	}
	for _, want := range []string{"buffered_events(id, shard_id", "GREATEST($13,", "shard_id = $1 AND namespace_id = $2", "GREATEST($14,", "run_id = $10)), $7"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	first, second := withIDs[12].Value.(int64), withIDs[13].Value.(int64)
	if second <= first {
		t.Errorf("ids must increase: %d then %d", first, second)
	}
	if other, _ := withBufferedEventIDs("SELECT 1", nil); other != "SELECT 1" {
		t.Error("other statements must pass unchanged")
	}
}

func TestIDsIncreaseWhenTheClockStands(t *testing.T) {
	source := &idSource{salt: 7, micros: func() int64 { return 1000 }}
	a, b := source.next(), source.next()
	if b <= a || a&0xff != 7 || b&0xff != 7 {
		t.Fatalf("ids %d, %d", a, b)
	}
}

func TestRegionFromTheEndpointName(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	if got := regionFor("abcdefghijklmnopqrstuvwxyz.dsql.eu-west-1.on.aws"); got != "eu-west-1" {
		t.Errorf("got %q", got)
	}
	if got := regionFor("127.0.0.1"); got != "" {
		t.Errorf("got %q", got)
	}
	t.Setenv("AWS_REGION", "us-east-2")
	if got := regionFor("127.0.0.1"); got != "us-east-2" {
		t.Errorf("got %q", got)
	}
}

func TestLifetimeStaysUnderDSQLsHour(t *testing.T) {
	for range 100 {
		if got := jittered(0); got > maxLifetime || got < maxLifetime*8/10 {
			t.Fatalf("lifetime %v", got)
		}
		if got := jittered(2 * maxLifetime); got > maxLifetime {
			t.Fatalf("lifetime %v over the cap", got)
		}
	}
}

func TestJoinLockIsSplit(t *testing.T) {
	query := `SELECT
ce.shard_id, e.last_write_version
FROM current_executions ce
INNER JOIN executions e ON e.shard_id = ce.shard_id AND e.run_id = ce.run_id
WHERE ce.shard_id = $1 AND ce.namespace_id = $2 AND ce.workflow_id = $3 FOR UPDATE`
	lock, read, ok := joinLock(query)
	if !ok {
		t.Fatal("not recognised")
	}
	if lock != "SELECT 1 FROM current_executions ce WHERE ce.shard_id = $1 AND ce.namespace_id = $2 AND ce.workflow_id = $3 FOR UPDATE" {
		t.Errorf("lock: %q", lock)
	}
	if strings.Contains(read, "FOR UPDATE") || !strings.Contains(read, "INNER JOIN executions e") {
		t.Errorf("read: %q", read)
	}
	if _, _, ok := joinLock("SELECT range_id FROM shards WHERE shard_id = $1 FOR UPDATE"); ok {
		t.Error("a single-table lock must pass unchanged")
	}
}

func TestLastMessageLockIsByKey(t *testing.T) {
	v2 := "SELECT message_id FROM queue_messages WHERE queue_type=$1 and queue_name=$2 and queue_partition=$3 and message_id >= (SELECT message_id FROM queue_messages WHERE queue_type=$1 and queue_name=$2 and queue_partition=$3 ORDER BY message_id DESC LIMIT 1) FOR UPDATE"
	rewritten, ok := lastMessageLock(v2)
	if !ok || !strings.Contains(rewritten.lock, "message_id = $4 FOR UPDATE") {
		t.Fatalf("%+v %v", rewritten, ok)
	}
	if _, ok := lastMessageLock("SELECT message_id FROM queue_messages WHERE queue_type=$1"); ok {
		t.Error("a plain read must pass unchanged")
	}
}

func TestTaskQueueIDsTravelAsHex(t *testing.T) {
	where := "SELECT task_id FROM tasks WHERE range_hash = $1 AND task_queue_id=$2 AND task_id >= $3"
	insert := "INSERT INTO tasks_v2 ( range_hash,  task_queue_id,  task_id, pass, data, data_encoding) VALUES   ($1, $2, $3, $4, $5, $6),($7, $8, $9, $10, $11, $12)"
	for query, want := range map[string][]int{where: {2}, insert: {2, 8}} {
		got := taskQueueParameters(query)
		if len(got) != len(want) {
			t.Fatalf("%s: %v", query, got)
		}
		for _, n := range want {
			if !got[n] {
				t.Errorf("%s: parameter %d not found", query, n)
			}
		}
	}
	args := []driver.NamedValue{{Ordinal: 1, Value: int64(7)}, {Ordinal: 2, Value: []byte{0x00, 0xff, 0x10}}, {Ordinal: 3, Value: []byte{1}}}
	encoded := encodeTaskQueueIDs(where, args)
	if encoded[1].Value != "00ff10" || encoded[2].Value.([]byte)[0] != 1 {
		t.Errorf("encoded %v", encoded)
	}
	if args[1].Value.([]byte)[0] != 0 {
		t.Error("the caller's arguments must not change")
	}
}

func TestRangeDeletesGoInBatchesByKey(t *testing.T) {
	batch, ok := batchedDelete("DELETE FROM history_immediate_tasks WHERE shard_id = $1 AND category_id = $2 AND task_id >= $3 AND task_id < $4")
	want := "DELETE FROM history_immediate_tasks WHERE (shard_id, category_id, task_id) IN (SELECT shard_id, category_id, task_id FROM history_immediate_tasks WHERE shard_id = $1 AND category_id = $2 AND task_id >= $3 AND task_id < $4 LIMIT 2000)"
	if !ok || batch != want {
		t.Fatalf("got %q", batch)
	}
	if _, ok := batchedDelete("DELETE FROM namespaces WHERE partition_id=$1 AND id = $2"); ok {
		t.Error("single-row deletes are left alone")
	}
}
