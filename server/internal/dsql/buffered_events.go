package dsql

import (
	"database/sql/driver"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"time"
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
