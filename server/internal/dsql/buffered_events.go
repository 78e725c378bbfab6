package dsql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"time"

	"go.temporal.io/server/common/persistence/sql/sqlplugin"
)

// DSQL has no SERIAL, so buffered_events.id (upstream's BIGSERIAL, read back ORDER BY id) is given by
// the plugin. An id is the microsecond clock shifted left 8 bits with this process's random salt in the
// low byte, strictly increasing within the process; and never below the execution's highest id + 1, so
// the order holds when a shard moves to a host whose clock is behind.

var (
	bufferedInsert = regexp.MustCompile(`(?is)^\s*INSERT\s+INTO\s+buffered_events\s*\(\s*shard_id\s*,`)
	placeholder    = regexp.MustCompile(`\$(\d+)`)
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

// withBufferedEventIDs adds the id column to upstream's buffered_events INSERT (one or more rows), with
// one new bind parameter per row; any other statement is returned unchanged.
func withBufferedEventIDs(query string, args []driver.NamedValue) (string, []driver.NamedValue) {
	if !bufferedInsert.MatchString(query) {
		return query, args
	}
	valuesAt := strings.Index(strings.ToUpper(query), "VALUES")
	if valuesAt < 0 {
		return query, args
	}
	header := strings.Replace(query[:valuesAt], "(", "(id, ", 1)
	var out strings.Builder
	out.WriteString(header)
	out.WriteString("VALUES ")
	depth, row := 0, 0
	rest := query[valuesAt+len("VALUES"):]
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		out.WriteByte(c)
		if c == '(' {
			depth++
			if depth == 1 {
				end := strings.IndexByte(rest[i:], ')')
				keys := placeholder.FindAllString(rest[i:i+end], 4)
				if len(keys) < 4 {
					return query, args // not upstream's shape: leave it to fail visibly
				}
				args = append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: bufferedEventIDs.next()})
				fmt.Fprintf(&out, "GREATEST($%d, (SELECT coalesce(max(id), 0) + %d FROM buffered_events WHERE "+
					"shard_id = %s AND namespace_id = %s AND workflow_id = %s AND run_id = %s)), ",
					len(args), row+1, keys[0], keys[1], keys[2], keys[3])
				row++
			}
		} else if c == ')' {
			depth--
		}
	}
	return out.String(), args
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
			return tx.TableCRUD.InsertIntoBufferedEvents(ctx, rows)
		})
}

func (t *tables) SelectFromBufferedEvents(ctx context.Context, filter sqlplugin.BufferedEventsFilter) ([]sqlplugin.BufferedEventsRow, error) {
	rows, err := t.TableCRUD.SelectFromBufferedEvents(ctx, filter)
	if err != nil {
		return nil, err
	}
	return rows, readPieces(ctx, t, rows, func(row *sqlplugin.BufferedEventsRow) storedValue {
		row.ShardID, row.NamespaceID, row.RunID = filter.ShardID, filter.NamespaceID, filter.RunID
		return bufferedEventValue(row)
	})
}

func (t *tables) DeleteFromBufferedEvents(ctx context.Context, filter sqlplugin.BufferedEventsFilter) (sql.Result, error) {
	result, err := t.TableCRUD.DeleteFromBufferedEvents(ctx, filter)
	if err != nil {
		return nil, err
	}
	_, err = t.sql.ExecContext(ctx, deleteOwnerChunksQuery, filter.ShardID, bufferedEventChunks, filter.NamespaceID,
		filter.RunID)
	return result, err
}
