package dsql

import (
	"context"
	"database/sql"
	"fmt"

	"go.temporal.io/server/common/metrics"
	"go.temporal.io/server/common/persistence/sql/sqlplugin"
)

// The plugin's typed overrides: upstream's PostgreSQL DB and Tx, wrapped, with the methods whose SQL or values
// DSQL would refuse overridden here, one file per table family (as upstream's postgresql package keeps them).
// An override calls upstream's own method wherever it can, with its arguments or results converted, and
// otherwise runs the plugin's SQL beside it; everything else is upstream's, unchanged.

// statements runs the plugin's own SQL on the same pool or transaction as upstream's methods (upstream's
// PostgreSQL DB and Tx both have them).
type statements interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	GetContext(ctx context.Context, dest any, query string, args ...any) error
	SelectContext(ctx context.Context, dest any, query string, args ...any) error
}

// postgresDB is what upstream's PostgreSQL plugin builds: the DB Temporal's services use and the admin side
// the schema tools and suites use, one object.
type postgresDB interface {
	sqlplugin.DB
	sqlplugin.AdminDB
	statements
}

// dbExtras is upstream's DB less its table methods: what the wrapper passes through as it is.
type dbExtras interface {
	sqlplugin.AdminDB
	IsDupEntryError(err error) bool
}

// tables are the overridden table methods over one pool or one transaction; upstream's TableCRUD (embedded)
// answers the rest.
type tables struct {
	sqlplugin.TableCRUD
	sql     statements
	metrics metrics.Handler
	// atomically runs fn over one transaction: a new one from the pool, or the one these tables are in.
	atomically func(ctx context.Context, fn func(*tables) error) error
	// alone: each statement is a transaction of its own (the DB's tables, not a Tx's), so a delete DSQL
	// refuses for its size may be run again in batches (range_delete.go).
	alone bool
}

type database struct {
	*tables
	dbExtras
	upstream postgresDB
}

type transaction struct {
	*tables
	finish interface {
		Commit() error
		Rollback() error
	}
}

var (
	_ sqlplugin.DB      = (*database)(nil)
	_ sqlplugin.AdminDB = (*database)(nil)
	_ sqlplugin.Tx      = (*transaction)(nil)
)

func newDatabase(upstream sqlplugin.GenericDB, handler metrics.Handler) (*database, error) {
	db, ok := upstream.(postgresDB)
	if !ok {
		return nil, fmt.Errorf("dsql plugin: upstream's PostgreSQL plugin returned %T, which lacks the DB, admin "+
			"or statement methods the plugin wraps: the pinned Temporal release changed its SQL layer", upstream)
	}
	d := &database{dbExtras: db, upstream: db}
	d.tables = &tables{TableCRUD: db, sql: db, metrics: handler, atomically: d.inNewTransaction, alone: true}
	return d, nil
}

func (d *database) BeginTx(ctx context.Context) (sqlplugin.Tx, error) {
	tx, err := d.upstream.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	return d.wrapTx(tx)
}

func (d *database) wrapTx(tx sqlplugin.Tx) (*transaction, error) {
	inTx, ok := tx.(statements)
	if !ok {
		_ = tx.Rollback()
		return nil, fmt.Errorf("dsql plugin: upstream's PostgreSQL transaction %T cannot run statements", tx)
	}
	t := &transaction{finish: tx}
	t.tables = &tables{TableCRUD: tx, sql: inTx, metrics: d.metrics}
	t.atomically = func(ctx context.Context, fn func(*tables) error) error { return fn(t.tables) }
	return t, nil
}

func (d *database) inNewTransaction(ctx context.Context, fn func(*tables) error) error {
	tx, err := d.upstream.BeginTx(ctx)
	if err != nil {
		return err
	}
	t, err := d.wrapTx(tx)
	if err != nil {
		return err
	}
	if err := fn(t.tables); err != nil {
		// The caller's error as it is (upstream tells timeouts and duplicate keys apart by identity); the
		// rollback's own failure adds nothing the caller can act on.
		_ = t.Rollback()
		return err
	}
	return t.Commit()
}

func (t *transaction) Commit() error   { return t.finish.Commit() }
func (t *transaction) Rollback() error { return t.finish.Rollback() }
