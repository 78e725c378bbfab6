package dsql

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jmoiron/sqlx"
	"go.temporal.io/server/common/metrics"
)

// livePool is the plugin's own pool on the endpoint upstream's suites run on (DSQL_SUITES_ADDR).
func livePool(t *testing.T) *sqlx.DB {
	t.Helper()
	upstreamDB(t) // skips, or fails under CI, as the suites do without an endpoint
	tokens, err := awsTokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	db, err := newConnector(tokens, "", metrics.NoopMetricsHandler).open(suiteConfig())
	if err != nil {
		t.Fatalf("opening the plugin's pool: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(1) // one connection: what a transaction leaves behind is seen by the next statement
	return db
}

type scanned struct {
	columns []string
	rows    [][]any
}

func scanAll(t *testing.T, rows *sql.Rows, err error) scanned {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	columns, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	result := scanned{columns: columns}
	for rows.Next() {
		values := make([]any, len(columns))
		targets := make([]any, len(columns))
		for i := range values {
			targets[i] = &values[i]
		}
		if err := rows.Scan(targets...); err != nil {
			t.Fatal(err)
		}
		result.rows = append(result.rows, values)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return result
}

// A transaction's first statement goes with its BEGIN through pgx's pipeline, not through pgx's database/sql
// driver; Temporal must scan the very same Go values either way, type for type.
func TestLivePipelinedFirstStatementReturnsStdlibsValues(t *testing.T) {
	db := livePool(t)
	ctx := context.Background()
	query := `SELECT $1::bigint AS big, $2::bytea AS raw, $3::text AS words, $4::timestamp AS at, $5::boolean AS flag,
		2::smallint AS small, 3::integer AS medium, 1.5::double precision AS ratio, NULL::bigint AS nothing,
		DATE '2026-12-07' AS day, 'x'::varchar(10) AS short, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id`
	args := []any{int64(42), []byte{0, 255}, "text", time.Date(2026, 12, 7, 12, 0, 0, 123456000, time.UTC), true}
	rows, err := db.QueryContext(ctx, query, args...) // no transaction: pgx's database/sql driver
	alone := scanAll(t, rows, err)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	rows, err = tx.QueryContext(ctx, query, args...)
	first := scanAll(t, rows, err)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(alone, first) {
		t.Fatalf("the pipelined statement returned\n%#v\nwhere pgx's driver returned\n%#v", first, alone)
	}
	if len(first.rows) != 1 || first.rows[0][0] != int64(42) || first.rows[0][8] != nil {
		t.Fatalf("unexpected row %#v", first.rows)
	}
}

// A write as the first statement reports the rows it changed, and the transaction commits it.
func TestLivePipelinedFirstWriteCountsItsRows(t *testing.T) {
	db := livePool(t)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "DELETE FROM cluster_metadata_info WHERE metadata_partition = -7"); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	insert := `INSERT INTO cluster_metadata_info (metadata_partition, cluster_name, data, data_encoding, version)
		VALUES ($1, $2, $3, $4, $5)`
	result, err := tx.ExecContext(ctx, insert, -7, "pipelined", []byte{1}, "Proto3", 1)
	if err != nil {
		t.Fatal(err)
	}
	if affected, err := result.RowsAffected(); err != nil || affected != 1 {
		t.Fatalf("rows affected %d (%v), want 1", affected, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var count int
	if err := db.GetContext(ctx, &count, "SELECT count(*) FROM cluster_metadata_info WHERE metadata_partition = -7"); err != nil || count != 1 {
		t.Fatalf("%d rows committed (%v), want 1", count, err)
	}
	if _, err := db.ExecContext(ctx, "DELETE FROM cluster_metadata_info WHERE metadata_partition = -7"); err != nil {
		t.Fatal(err)
	}
}

// A first statement that fails ends in the server's error, the transaction cannot then commit, and the
// connection is clean for the next caller.
func TestLivePipelinedFirstStatementFailureLeavesTheConnectionClean(t *testing.T) {
	db := livePool(t)
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tx.QueryContext(ctx, "SELECT 1 / $1::bigint", int64(0))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "22012" {
		t.Fatalf("dividing by zero answered %v, want SQLSTATE 22012", err)
	}
	if err := tx.Commit(); !errors.Is(err, pgx.ErrTxCommitRollback) {
		t.Fatalf("committing a failed transaction answered %v, want pgx's ErrTxCommitRollback", err)
	}
	var one int
	if err := db.GetContext(ctx, &one, "SELECT 1"); err != nil || one != 1 {
		t.Fatalf("the connection after it answered %d (%v)", one, err)
	}
}
