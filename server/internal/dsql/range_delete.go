package dsql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// DSQL modifies at most 3,000 rows in one transaction. Upstream's range deletes (acknowledged history
// tasks, a deleted branch's history nodes, acknowledged queue messages) have no such bound; on the DB the
// plugin runs one that DSQL refuses for its size again as batches, each its own statement and so its own
// transaction, by primary key, until a batch deletes fewer rows than it may. In a caller's transaction the
// refusal stands: its batches would count toward the same limit.
const deleteBatch = 2000

// keyRange is a delete that may touch more rows than DSQL allows: `DELETE FROM table WHERE where`, with the
// table's primary key (the DSQL schema's). where takes the same parameters as upstream's statement.
type keyRange struct{ table, key, where string }

func (r keyRange) delete() string { return "DELETE FROM " + r.table + " WHERE " + r.where }

// batch deletes up to deleteBatch rows of the range.
func (r keyRange) batch() string {
	return fmt.Sprintf("DELETE FROM %s WHERE (%s) IN (SELECT %s FROM %s WHERE %s LIMIT %d)", r.table, r.key, r.key,
		r.table, r.where, deleteBatch)
}

func tooManyRows(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "54000" && strings.Contains(pgErr.Message, "row limit")
}

// inBatches is the outcome of a whole delete of r (upstream's, or the plugin's own), run again in batches
// where DSQL refused it for its size and the tables are the DB's.
func (t *tables) inBatches(ctx context.Context, r keyRange, result sql.Result, err error, args ...any) (sql.Result, error) {
	if !t.alone || !tooManyRows(err) {
		return result, err
	}
	var total rowsDeleted
	for {
		result, err := t.sql.ExecContext(ctx, r.batch(), args...)
		if err != nil {
			return nil, err
		}
		deleted, err := result.RowsAffected()
		if err != nil {
			return nil, err
		}
		total += rowsDeleted(deleted)
		if deleted < deleteBatch {
			return total, nil
		}
	}
}

// deleteRange runs the plugin's own delete of r, in batches where it has to be.
func (t *tables) deleteRange(ctx context.Context, r keyRange, args ...any) (sql.Result, error) {
	result, err := t.sql.ExecContext(ctx, r.delete(), args...)
	return t.inBatches(ctx, r, result, err, args...)
}

type rowsDeleted int64

func (r rowsDeleted) LastInsertId() (int64, error) { return 0, errors.New("no insert id") }
func (r rowsDeleted) RowsAffected() (int64, error) { return int64(r), nil }
