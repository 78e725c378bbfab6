package dsql

import (
	"context"
	"database/sql/driver"
	"io"
	"strings"
)

// DSQL takes FOR UPDATE only on one table with equality on its whole key. Upstream asks for two
// others, rewritten here into statements DSQL runs, in the same transaction on the same connection:
//
//   - the current-execution row locked together with its execution (a join): the current row is locked
//     on its key, then the join is read; the execution row needs no lock of its own, since every write of
//     it is fenced by db_record_version and conflicts at commit anyway;
//   - a queue's last message locked with `message_id >= (subquery)`: the last id is read, then that one
//     row is locked by its whole key (none when the queue is empty, as before).

type queryer = driver.QueryerContext

func normalized(query string) string { return strings.Join(strings.Fields(query), " ") }

// joinLock splits `SELECT ... FROM t ce INNER JOIN ... WHERE w FOR UPDATE` into a lock of t's row and
// the read; ok is false for any other statement.
func joinLock(query string) (lock, read string, ok bool) {
	text := normalized(query)
	upper := strings.ToUpper(text)
	const forUpdate = " FOR UPDATE"
	join, where := strings.Index(upper, " INNER JOIN "), strings.LastIndex(upper, " WHERE ")
	from := strings.Index(upper, " FROM ")
	if !strings.HasSuffix(upper, forUpdate) || join < 0 || from < 0 || where < join || from > join {
		return "", "", false
	}
	table := text[from+len(" FROM ") : join]
	condition := text[where+len(" WHERE ") : len(text)-len(forUpdate)]
	return "SELECT 1 FROM " + table + " WHERE " + condition + forUpdate, text[:len(text)-len(forUpdate)], true
}

// lastMessage is how the queue's last-message lock is rewritten: the read of the last id, and the lock
// of that row (its id bound as the next parameter).
type lastMessage struct{ last, lock string }

var lastMessageLocks = map[string]lastMessage{
	"SELECT message_id FROM queue_messages WHERE queue_type=$1 and queue_name=$2 and queue_partition=$3 and message_id >= (": {
		last: "SELECT max(message_id) FROM queue_messages WHERE queue_type = $1 AND queue_name = $2 AND queue_partition = $3",
		lock: "SELECT message_id FROM queue_messages WHERE queue_type = $1 AND queue_name = $2 AND queue_partition = $3 AND message_id = $4 FOR UPDATE",
	},
	"SELECT message_id FROM queue WHERE message_id >= (": {
		last: "SELECT max(message_id) FROM queue WHERE queue_type = $1",
		lock: "SELECT message_id FROM queue WHERE queue_type = $1 AND message_id = $2 FOR UPDATE",
	},
}

func lastMessageLock(query string) (lastMessage, bool) {
	text := normalized(query)
	if !strings.HasSuffix(strings.ToUpper(text), "FOR UPDATE") {
		return lastMessage{}, false
	}
	for prefix, rewritten := range lastMessageLocks {
		if strings.HasPrefix(text, prefix) {
			return rewritten, true
		}
	}
	return lastMessage{}, false
}

// lockedQuery runs query, with the rewrites above where upstream's form is one DSQL refuses.
func lockedQuery(ctx context.Context, conn queryer, query string, args []driver.NamedValue) (driver.Rows, error) {
	if lock, read, ok := joinLock(query); ok {
		if err := drain(conn.QueryContext(ctx, lock, args)); err != nil {
			return nil, err
		}
		return conn.QueryContext(ctx, read, args)
	}
	if rewritten, ok := lastMessageLock(query); ok {
		last, err := firstValue(conn.QueryContext(ctx, rewritten.last, args))
		if err != nil {
			return nil, err
		}
		return conn.QueryContext(ctx, rewritten.lock, append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: last}))
	}
	return conn.QueryContext(ctx, query, args)
}

func drain(rows driver.Rows, err error) error {
	if err != nil {
		return err
	}
	defer rows.Close()
	values := make([]driver.Value, len(rows.Columns()))
	for {
		if err := rows.Next(values); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

func firstValue(rows driver.Rows, err error) (driver.Value, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	values := make([]driver.Value, len(rows.Columns()))
	if err := rows.Next(values); err == io.EOF {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return values[0], nil
}
