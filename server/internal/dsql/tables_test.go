package dsql

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/server/common/persistence/sql/sqlplugin"
	"go.temporal.io/server/common/primitives"
)

// script stands in for the pool or transaction the plugin's own SQL runs on: it keeps every statement, and
// answers as the test says.
type script struct {
	ran      []statement
	affected []int64 // what each ExecContext deletes, in turn
	execErr  func(query string) error
	get      func(dest any, query string) error
	sel      func(dest any, query string) error
}

type statement struct {
	query string
	args  []any
}

func (s *script) ExecContext(_ context.Context, query string, args ...any) (sql.Result, error) {
	s.ran = append(s.ran, statement{query, args})
	if s.execErr != nil {
		if err := s.execErr(query); err != nil {
			return nil, err
		}
	}
	var affected int64
	if len(s.affected) > 0 {
		affected, s.affected = s.affected[0], s.affected[1:]
	}
	return rowsDeleted(affected), nil
}

func (s *script) GetContext(_ context.Context, dest any, query string, args ...any) error {
	s.ran = append(s.ran, statement{query, args})
	return s.get(dest, query)
}

func (s *script) SelectContext(_ context.Context, dest any, query string, args ...any) error {
	s.ran = append(s.ran, statement{query, args})
	return s.sel(dest, query)
}

// upstreamTables stands in for upstream's PostgreSQL tables: the methods a test calls answer as it says, any
// other panics (the embedded interface is nil), which shows the override did not call it.
type upstreamTables struct {
	sqlplugin.TableCRUD
	writeLockShards      func(sqlplugin.ShardsFilter) (int64, error)
	lockCurrent          func(sqlplugin.CurrentExecutionsFilter) error
	selectFromTaskQueues func(sqlplugin.TaskQueuesFilter) ([]sqlplugin.TaskQueuesRow, error)
	insertIntoTasksV2    func([]sqlplugin.TasksRowV2) error
	getClusterMembers    func() []sqlplugin.ClusterMembershipRow
	deleteFromRange      func() (sql.Result, error) // every range delete
}

func (u *upstreamTables) WriteLockShards(_ context.Context, filter sqlplugin.ShardsFilter) (int64, error) {
	return u.writeLockShards(filter)
}

func (u *upstreamTables) LockCurrentExecutions(_ context.Context, filter sqlplugin.CurrentExecutionsFilter) (*sqlplugin.CurrentExecutionsRow, error) {
	return &sqlplugin.CurrentExecutionsRow{}, u.lockCurrent(filter)
}

func (u *upstreamTables) SelectFromTaskQueues(_ context.Context, filter sqlplugin.TaskQueuesFilter, _ sqlplugin.MatchingTaskVersion) ([]sqlplugin.TaskQueuesRow, error) {
	return u.selectFromTaskQueues(filter)
}

func (u *upstreamTables) InsertIntoTasksV2(_ context.Context, rows []sqlplugin.TasksRowV2) (sql.Result, error) {
	return rowsDeleted(len(rows)), u.insertIntoTasksV2(rows)
}

func (u *upstreamTables) GetClusterMembers(context.Context, *sqlplugin.ClusterMembershipFilter) ([]sqlplugin.ClusterMembershipRow, error) {
	return u.getClusterMembers(), nil
}

func (u *upstreamTables) RangeDeleteFromTransferTasks(context.Context, sqlplugin.TransferTasksRangeFilter) (sql.Result, error) {
	return u.deleteFromRange()
}

func (u *upstreamTables) RangeDeleteFromTimerTasks(context.Context, sqlplugin.TimerTasksRangeFilter) (sql.Result, error) {
	return u.deleteFromRange()
}

func (u *upstreamTables) DeleteFromBufferedEvents(context.Context, sqlplugin.BufferedEventsFilter) (sql.Result, error) {
	return u.deleteFromRange()
}

var refusedForSize = &pgconn.PgError{Code: "54000", Message: "transaction row limit exceeded"}

func TestTheShardRowIsLockedForUpdate(t *testing.T) {
	var locked []int32
	tb := &tables{TableCRUD: &upstreamTables{writeLockShards: func(filter sqlplugin.ShardsFilter) (int64, error) {
		locked = append(locked, filter.ShardID)
		return 42, nil
	}}}
	rangeID, err := tb.ReadLockShards(context.Background(), sqlplugin.ShardsFilter{ShardID: 3})
	if err != nil || rangeID != 42 || !reflect.DeepEqual(locked, []int32{3}) {
		t.Fatalf("range id %d (%v), write locks taken on shards %v: want 42 from upstream's FOR UPDATE on shard 3",
			rangeID, err, locked)
	}
}

func TestTheExecutionRowIsReadWithoutALock(t *testing.T) {
	statements := &script{get: func(dest any, _ string) error {
		*dest.(*sqlplugin.ExecutionVersion) = sqlplugin.ExecutionVersion{DBRecordVersion: 7, NextEventID: 12}
		return nil
	}}
	tb := &tables{sql: statements}
	filter := sqlplugin.ExecutionsFilter{ShardID: 1, NamespaceID: primitives.NewUUID(), WorkflowID: "w",
		RunID: primitives.NewUUID()}
	version, next, err := tb.ReadLockExecutions(context.Background(), filter)
	if err != nil || version != 7 || next != 12 {
		t.Fatalf("got %d, %d (%v)", version, next, err)
	}
	if len(statements.ran) != 1 || strings.Contains(statements.ran[0].query, " FOR ") ||
		len(statements.ran[0].args) != 4 {
		t.Fatalf("ran %+v, want one plain read by the row's key", statements.ran)
	}
}

// lockThenJoin runs LockCurrentExecutionsJoinExecutions for filter over a join that answers one row, checks that
// the current row was locked on filter's key and that wantQuery ran, unlocked, and returns the rows.
func lockThenJoin(t *testing.T, filter sqlplugin.CurrentExecutionsFilter, wantQuery string) []sqlplugin.CurrentExecutionsRow {
	t.Helper()
	var lockedOn []sqlplugin.CurrentExecutionsFilter
	statements := &script{sel: func(dest any, _ string) error {
		*dest.(*[]sqlplugin.CurrentExecutionsRow) = []sqlplugin.CurrentExecutionsRow{{WorkflowID: "w", LastWriteVersion: 5}}
		return nil
	}}
	tb := &tables{sql: statements, TableCRUD: &upstreamTables{lockCurrent: func(filter sqlplugin.CurrentExecutionsFilter) error {
		lockedOn = append(lockedOn, filter)
		return nil
	}}}
	rows, err := tb.LockCurrentExecutionsJoinExecutions(context.Background(), filter)
	if err != nil || len(rows) != 1 || rows[0].LastWriteVersion != 5 {
		t.Fatalf("rows %+v (%v)", rows, err)
	}
	if len(lockedOn) != 1 || !reflect.DeepEqual(lockedOn[0], filter) {
		t.Fatalf("current rows locked %+v, want the one of the filter", lockedOn)
	}
	if len(statements.ran) != 1 || statements.ran[0].query != wantQuery || strings.Contains(wantQuery, "FOR UPDATE") {
		t.Fatalf("ran %+v, want the join, unlocked", statements.ran)
	}
	return rows
}

func TestWithoutACurrentRowNothingIsJoined(t *testing.T) {
	statements := &script{}
	tb := &tables{sql: statements, TableCRUD: &upstreamTables{lockCurrent: func(sqlplugin.CurrentExecutionsFilter) error {
		return sql.ErrNoRows
	}}}
	rows, err := tb.LockCurrentExecutionsJoinExecutions(context.Background(), sqlplugin.CurrentExecutionsFilter{})
	if err != nil || rows != nil || len(statements.ran) != 0 {
		t.Fatalf("without a current row: rows %+v (%v), ran %+v; want none, as upstream's join finds", rows, err, statements.ran)
	}
}

func TestTheLastMessageIsLockedByItsWholeKey(t *testing.T) {
	filter := sqlplugin.QueueV2Filter{QueueType: 1, QueueName: "q", Partition: 0}
	statements := &script{get: func(dest any, query string) error {
		switch dest := dest.(type) {
		case *sql.NullInt64:
			*dest = sql.NullInt64{Int64: 17, Valid: true}
		case *int64:
			*dest = 17
		}
		return nil
	}}
	tb := &tables{sql: statements}
	last, err := tb.GetLastEnqueuedMessageIDForUpdateV2(context.Background(), filter)
	if err != nil || last != 17 {
		t.Fatalf("last %d (%v)", last, err)
	}
	wantLock := []any{filter.QueueType, filter.QueueName, filter.Partition, int64(17)}
	if len(statements.ran) != 2 || statements.ran[0].query != lastMessageV2Query ||
		statements.ran[1].query != lockMessageV2Query || !reflect.DeepEqual(statements.ran[1].args, wantLock) {
		t.Fatalf("ran %+v, want the last id read, then its row locked by %v", statements.ran, wantLock)
	}

	empty := &script{get: func(dest any, _ string) error { *dest.(*sql.NullInt64) = sql.NullInt64{}; return nil }}
	tb = &tables{sql: empty}
	if _, err := tb.GetLastEnqueuedMessageIDForUpdate(context.Background(), 1); !errors.Is(err, sql.ErrNoRows) ||
		len(empty.ran) != 1 {
		t.Fatalf("empty queue: %v after %+v; want sql.ErrNoRows and no lock", err, empty.ran)
	}
}

func TestTaskQueueIDsTravelAsHex(t *testing.T) {
	var seen sqlplugin.TaskQueuesFilter
	upstream := &upstreamTables{selectFromTaskQueues: func(filter sqlplugin.TaskQueuesFilter) ([]sqlplugin.TaskQueuesRow, error) {
		seen = filter
		return []sqlplugin.TaskQueuesRow{{TaskQueueID: []byte("00ff10"), RangeID: 4}}, nil
	}}
	tb := &tables{TableCRUD: upstream}
	pageSize := 10
	rows, err := tb.SelectFromTaskQueues(context.Background(), sqlplugin.TaskQueuesFilter{RangeHash: 1,
		TaskQueueIDGreaterThan: []byte{0x00, 0xff}, PageSize: &pageSize}, sqlplugin.MatchingTaskVersion2)
	if err != nil || len(rows) != 1 || !reflect.DeepEqual(rows[0].TaskQueueID, []byte{0x00, 0xff, 0x10}) {
		t.Fatalf("rows %+v (%v), want the id decoded", rows, err)
	}
	if string(seen.TaskQueueIDGreaterThan) != "00ff" || seen.TaskQueueID != nil {
		t.Fatalf("upstream was given %q and %v; want the hex, and an absent id left absent",
			seen.TaskQueueIDGreaterThan, seen.TaskQueueID)
	}

	var inserted []sqlplugin.TasksRowV2
	upstream.insertIntoTasksV2 = func(rows []sqlplugin.TasksRowV2) error { inserted = rows; return nil }
	mine := []sqlplugin.TasksRowV2{{TaskQueueID: []byte{0xab}}, {TaskQueueID: []byte{0x01, 0x02}}}
	if _, err := tb.InsertIntoTasksV2(context.Background(), mine); err != nil {
		t.Fatal(err)
	}
	if len(inserted) != 2 || string(inserted[0].TaskQueueID) != "ab" || string(inserted[1].TaskQueueID) != "0102" {
		t.Fatalf("upstream inserted %+v, want hex ids", inserted)
	}
	if mine[0].TaskQueueID[0] != 0xab {
		t.Fatal("the caller's rows must keep their ids")
	}
}

func TestClusterMembersHostIDsComeBackAsBytes(t *testing.T) {
	host := primitives.NewUUID()
	tb := &tables{TableCRUD: &upstreamTables{getClusterMembers: func() []sqlplugin.ClusterMembershipRow {
		return []sqlplugin.ClusterMembershipRow{{HostID: []byte(host.String()), RPCAddress: "10.0.0.1"}}
	}}}
	rows, err := tb.GetClusterMembers(context.Background(), &sqlplugin.ClusterMembershipFilter{})
	if err != nil || len(rows) != 1 || !reflect.DeepEqual(rows[0].HostID, []byte(host)) {
		t.Fatalf("rows %+v (%v), want host id %v as its 16 bytes", rows, err, host)
	}
}

func TestARefusedRangeDeleteIsRunAgainInBatches(t *testing.T) {
	upstream := &upstreamTables{deleteFromRange: func() (sql.Result, error) { return nil, refusedForSize }}
	statements := &script{affected: []int64{deleteBatch, deleteBatch, 7}}
	db := &tables{TableCRUD: upstream, sql: statements, alone: true}
	filter := sqlplugin.TransferTasksRangeFilter{ShardID: 4, InclusiveMinTaskID: 10, ExclusiveMaxTaskID: 9000}
	result, err := db.RangeDeleteFromTransferTasks(context.Background(), filter)
	if err != nil {
		t.Fatal(err)
	}
	if deleted, _ := result.RowsAffected(); deleted != 2*deleteBatch+7 {
		t.Fatalf("deleted %d rows, want the batches' sum", deleted)
	}
	want := statement{transferTasksRange.batch(), []any{int32(4), int64(10), int64(9000)}}
	if len(statements.ran) != 3 || !reflect.DeepEqual(statements.ran[2], want) {
		t.Fatalf("ran %+v, want three batches like %+v", statements.ran, want)
	}

	inTx := &tables{TableCRUD: upstream, sql: &script{}}
	if _, err := inTx.RangeDeleteFromTransferTasks(context.Background(), filter); !errors.Is(err, refusedForSize) {
		t.Fatalf("in a transaction: %v, want DSQL's refusal, unchanged", err)
	}
	other := errors.New("connection reset")
	upstream.deleteFromRange = func() (sql.Result, error) { return nil, other }
	if _, err := db.RangeDeleteFromTransferTasks(context.Background(), filter); !errors.Is(err, other) ||
		len(statements.ran) != 3 {
		t.Fatalf("another error: %v, and %d statements; want it back, with no batch", err, len(statements.ran))
	}
}

func TestScheduledBoundsAreBatchedInUTC(t *testing.T) {
	upstream := &upstreamTables{deleteFromRange: func() (sql.Result, error) { return nil, refusedForSize }}
	statements := &script{}
	db := &tables{TableCRUD: upstream, sql: statements, alone: true}
	zone := time.FixedZone("UTC+2", 2*60*60)
	from := time.Date(2025, 1, 1, 12, 0, 0, 0, zone)
	if _, err := db.RangeDeleteFromTimerTasks(context.Background(), sqlplugin.TimerTasksRangeFilter{ShardID: 1,
		InclusiveMinVisibilityTimestamp: from, ExclusiveMaxVisibilityTimestamp: from.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if bound := statements.ran[0].args[1].(time.Time); bound.Location() != time.UTC || !bound.Equal(from) {
		t.Fatalf("bound %v, want %v in UTC", bound, from)
	}
}

func TestBufferedEventsAndTheirPiecesAreDeletedInBatches(t *testing.T) {
	upstream := &upstreamTables{deleteFromRange: func() (sql.Result, error) { return nil, refusedForSize }}
	statements := &script{affected: []int64{5}, execErr: func(query string) error {
		if query == ownerPieces.delete() {
			return refusedForSize
		}
		return nil
	}}
	db := &tables{TableCRUD: upstream, sql: statements, alone: true}
	result, err := db.DeleteFromBufferedEvents(context.Background(), sqlplugin.BufferedEventsFilter{ShardID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if deleted, _ := result.RowsAffected(); deleted != 5 {
		t.Fatalf("deleted %d buffered events, want 5", deleted)
	}
	var queries []string
	for _, ran := range statements.ran {
		queries = append(queries, ran.query)
	}
	want := []string{runBufferedEvents.batch(), ownerPieces.delete(), ownerPieces.batch()}
	if !reflect.DeepEqual(queries, want) {
		t.Fatalf("ran %q, want %q", queries, want)
	}
}

func TestRangeDeletesGoInBatchesByKey(t *testing.T) {
	want := "DELETE FROM history_immediate_tasks WHERE (shard_id, category_id, task_id) IN (SELECT shard_id, " +
		"category_id, task_id FROM history_immediate_tasks WHERE shard_id = $1 AND category_id = $2 AND task_id >= $3 " +
		"AND task_id < $4 LIMIT 2000)"
	if got := immediateTasksRange.batch(); got != want {
		t.Fatalf("got %q", got)
	}
	if got := itemListPieces.delete(); got != "DELETE FROM value_chunks WHERE shard_id = $1 AND kind = $2 AND "+
		"owner_a = $3 AND owner_b = $4 AND item = ANY($5)" {
		t.Fatalf("got %q", got)
	}
}

// pool stands in for upstream's DB: BeginTx hands out tx, whose commit or rollback it records.
type pool struct {
	postgresDB
	tx *poolTx
}

type poolTx struct {
	sqlplugin.Tx
	*script
	committed, rolledBack bool
}

func (p *pool) BeginTx(context.Context) (sqlplugin.Tx, error) { return p.tx, nil }
func (tx *poolTx) Commit() error                              { tx.committed = true; return nil }
func (tx *poolTx) Rollback() error                            { tx.rolledBack = true; return errors.New("already gone") }

func TestAFailedTransactionGivesBackTheCallersErrorItself(t *testing.T) {
	// Upstream tells a timeout from other failures by identity (AppendHistoryNodes compares the error itself).
	db := &pool{tx: &poolTx{script: &script{}}}
	wrapped, err := newDatabase(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	failed := wrapped.atomically(context.Background(), func(*tables) error { return context.DeadlineExceeded })
	if failed != context.DeadlineExceeded || !db.tx.rolledBack || db.tx.committed {
		t.Fatalf("got %v (rolled back %v, committed %v), want context.DeadlineExceeded itself after a rollback",
			failed, db.tx.rolledBack, db.tx.committed)
	}
	if err := wrapped.atomically(context.Background(), func(*tables) error { return nil }); err != nil || !db.tx.committed {
		t.Fatalf("a transaction that succeeded was not committed: %v", err)
	}
}
