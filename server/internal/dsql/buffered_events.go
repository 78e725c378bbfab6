package dsql

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"go.temporal.io/server/common/persistence/sql/sqlplugin"
)

// DSQL has no SERIAL, so buffered_events.id (upstream's BIGSERIAL, read back ORDER BY id) is given by
// the plugin's own INSERT. An id is the microsecond clock shifted left 8 bits with this process's random
// salt in the low byte, strictly increasing within the process; and never below the execution's highest
// id + the row's place in the statement, so the order holds when a shard moves to a host whose clock is
// behind (the statement's subselects all see the rows from before it).

const (
	insertBufferedEventsQuery = `INSERT INTO buffered_events (id, shard_id, namespace_id, workflow_id, run_id, data, ` +
		`data_encoding) VALUES `
	// One row's values, from its first parameter (%[1]d): its id, its run's key, the event; %[8]d is the row's
	// place in the statement.
	bufferedEventValues = `(GREATEST($%[1]d, (SELECT coalesce(max(id), 0) + %[8]d FROM buffered_events WHERE ` +
		`shard_id = $%[2]d AND namespace_id = $%[3]d AND workflow_id = $%[4]d AND run_id = $%[5]d)), ` +
		`$%[2]d, $%[3]d, $%[4]d, $%[5]d, $%[6]d, $%[7]d)`
	bufferedEventParameters = 7
)

type idSource struct {
	mu     sync.Mutex
	last   int64
	salt   int64
	micros func() int64
}

var bufferedEventIDs = &idSource{salt: rand.Int64N(256), micros: func() int64 { return time.Now().UnixMicro() }}

func (s *idSource) next() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	tick := max(s.micros(), s.last>>8+1)
	s.last = tick<<8 | s.salt
	return s.last
}

// bufferedEventsInsert is the plugin's INSERT of rows, each with a new id from ids.
func bufferedEventsInsert(rows []sqlplugin.BufferedEventsRow, ids func() int64) (string, []any) {
	var query strings.Builder
	query.WriteString(insertBufferedEventsQuery)
	args := make([]any, 0, len(rows)*bufferedEventParameters)
	for index, row := range rows {
		if index > 0 {
			query.WriteString(", ")
		}
		first := len(args) + 1
		fmt.Fprintf(&query, bufferedEventValues, first, first+1, first+2, first+3, first+4, first+5, first+6, index+1)
		args = append(args, ids(), row.ShardID, row.NamespaceID, row.WorkflowID, row.RunID, row.Data, row.DataEncoding)
	}
	return query.String(), args
}

func (t *tables) insertBufferedEvents(ctx context.Context, rows []sqlplugin.BufferedEventsRow) (sql.Result, error) {
	query, args := bufferedEventsInsert(rows, bufferedEventIDs.next)
	return t.sql.ExecContext(ctx, query, args...)
}

// A buffered event (a signal, an activity's result, ... that arrived during a workflow task) is up to
// limit.blobSize.error (2 MiB by default); over chunkSize it is stored in pieces filed under the run, all of
// which go when the run's buffered events are flushed.

func bufferedEventValue(row *sqlplugin.BufferedEventsRow) storedValue {
	ref := chunkRef{shard: row.ShardID, kind: bufferedEventChunks, ownerA: row.NamespaceID, ownerB: row.RunID,
		group: randomGroup()}
	return storedValue{&row.Data, &row.DataEncoding, ref}
}

func (t *tables) InsertIntoBufferedEvents(ctx context.Context, rows []sqlplugin.BufferedEventsRow) (sql.Result, error) {
	return insertWithPieces(ctx, t, rows, bufferedEventValue, nil,
		func(tx *tables, rows []sqlplugin.BufferedEventsRow) (sql.Result, error) {
			return tx.insertBufferedEvents(ctx, rows)
		})
}

func (t *tables) SelectFromBufferedEvents(ctx context.Context, filter sqlplugin.BufferedEventsFilter) ([]sqlplugin.BufferedEventsRow, error) {
	return selectWithPieces(ctx, t, func(tx *tables) ([]sqlplugin.BufferedEventsRow, error) {
		return tx.TableCRUD.SelectFromBufferedEvents(ctx, filter)
	}, func(row *sqlplugin.BufferedEventsRow) storedValue {
		row.ShardID, row.NamespaceID, row.RunID = filter.ShardID, filter.NamespaceID, filter.RunID
		return bufferedEventValue(row)
	})
}

var runBufferedEvents = keyRange{table: "buffered_events", key: "shard_id, namespace_id, workflow_id, run_id, id",
	where: "shard_id = $1 AND namespace_id = $2 AND workflow_id = $3 AND run_id = $4"}

// DeleteFromBufferedEvents flushes a run's buffered events (on the DB, in batches if there are more than DSQL
// deletes at once), then their pieces.
func (t *tables) DeleteFromBufferedEvents(ctx context.Context, filter sqlplugin.BufferedEventsFilter) (sql.Result, error) {
	result, err := t.TableCRUD.DeleteFromBufferedEvents(ctx, filter)
	result, err = t.inBatches(ctx, runBufferedEvents, result, err, filter.ShardID, filter.NamespaceID,
		filter.WorkflowID, filter.RunID)
	if err != nil {
		return nil, err
	}
	_, err = t.deleteRange(ctx, ownerPieces, filter.ShardID, bufferedEventChunks, filter.NamespaceID, filter.RunID)
	return result, err
}
