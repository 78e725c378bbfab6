// Package backend prepares the PostgreSQL behind the stand-in and answers catalog questions about it.
//
// It owns what DSQL has and PostgreSQL lacks: the `sys.jobs` view of asynchronous index builds with
// `sys.wait_for_job`, and DSQL's per-transaction limits (3,000 modified rows, 1 KiB keys), which are
// enforced inside PostgreSQL by statement triggers the stand-in puts on every table, so that the limit
// errors arrive in protocol order like any other statement error.
package backend

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Limits DSQL enforces per transaction and per key (CHAP_quotas).
const (
	RowLimit   = 3000
	KeySizeMax = 1024
	// Each table's triggers call a function of its own with the key's size inlined, so PL/pgSQL keeps its plan;
	// the first triggers (prefix without "v2") called one shared function that planned dynamic SQL every time.
	triggerName   = "dsql_local_limits_v2"
	legacyTrigger = "dsql_local_limits_"
)

// limitsFunction is a table's trigger function: count the statement's rows into the transaction's total and
// measure the widest key it wrote. Static SQL only: PL/pgSQL plans it once per connection.
func limitsFunction(name, keySize string) string {
	return fmt.Sprintf(`CREATE OR REPLACE FUNCTION dsql_local.%s() RETURNS trigger LANGUAGE plpgsql AS $$
	DECLARE
		changed bigint;
		widest bigint := 0;
		total bigint;
	BEGIN
		IF TG_OP = 'DELETE' THEN
			SELECT count(*) INTO changed FROM old_rows;
		ELSE
			SELECT count(*), coalesce(max(%s), 0) INTO changed, widest FROM new_rows;
		END IF;
		total := coalesce(nullif(current_setting('dsql_local.modified_rows', true), '')::bigint, 0) + changed;
		PERFORM set_config('dsql_local.modified_rows', total::text, true);
		IF total > %d THEN
			RAISE EXCEPTION 'transaction row limit exceeded' USING ERRCODE = '54000';
		END IF;
		IF widest > %d THEN
			RAISE EXCEPTION 'key size too large' USING ERRCODE = '54000';
		END IF;
		RETURN NULL;
	END $$`, name, keySize, RowLimit, KeySizeMax)
}

// setupStatements run once at start, each in its own transaction; all are idempotent.
var setupStatements = []string{
	`CREATE SCHEMA IF NOT EXISTS sys`,
	`CREATE TABLE IF NOT EXISTS sys.jobs (
		job_id text PRIMARY KEY, status text NOT NULL, details text, job_type text NOT NULL,
		object_name text, start_time timestamptz NOT NULL DEFAULT now(), update_time timestamptz NOT NULL DEFAULT now())`,
	// Waits for a job, committing between looks so each look sees the build's progress (CALL outside a block).
	`CREATE OR REPLACE PROCEDURE sys.wait_for_job(id text) LANGUAGE plpgsql AS $$
	DECLARE
		state text;
		detail text;
	BEGIN
		LOOP
			SELECT status, details INTO state, detail FROM sys.jobs WHERE job_id = id;
			IF state IS NULL THEN
				RAISE EXCEPTION 'job % does not exist', id USING ERRCODE = '42704';
			ELSIF state = 'completed' THEN
				RETURN;
			ELSIF state IN ('failed', 'cancelled') THEN
				RAISE EXCEPTION 'job % %: %', id, state, coalesce(detail, '') USING ERRCODE = 'XX000';
			END IF;
			COMMIT;
			PERFORM pg_sleep(0.05);
		END LOOP;
	END $$`,
	`CREATE SCHEMA IF NOT EXISTS dsql_local`,
}

// Catalog is the stand-in's view of the backend's tables, cached until the next schema change.
type Catalog struct {
	pool  *pgxpool.Pool
	mu    sync.Mutex
	keys  map[string][]string
	types map[string]map[string]string
}

// Open connects to the backend database (creating it if missing) and runs the setup.
func Open(ctx context.Context, connString, database string) (*Catalog, error) {
	if err := ensureDatabase(ctx, connString, database); err != nil {
		return nil, err
	}
	config, err := pgxpool.ParseConfig(connString + " dbname=" + QuoteConnValue(database))
	if err != nil {
		return nil, err
	}
	config.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, config)
	if err != nil {
		return nil, err
	}
	for _, statement := range setupStatements {
		if _, err := pool.Exec(ctx, statement); err != nil {
			pool.Close()
			return nil, fmt.Errorf("preparing the backend: %w", err)
		}
	}
	catalog := &Catalog{pool: pool, keys: map[string][]string{}, types: map[string]map[string]string{}}
	if err := catalog.GuardAll(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return catalog, nil
}

func ensureDatabase(ctx context.Context, connString, database string) error {
	conn, err := pgx.Connect(ctx, connString+" dbname=postgres")
	if err != nil {
		return fmt.Errorf("connecting to the backend PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", database).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{database}.Sanitize()); err != nil {
			return fmt.Errorf("creating backend database %s: %w", database, err)
		}
	}
	return nil
}

// QuoteConnValue quotes a libpq keyword/value connection-string value.
func QuoteConnValue(value string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(value, `\`, `\\`), "'", `\'`) + "'"
}

// Pool is the catalog's connection pool (background index builds use it too).
func (c *Catalog) Pool() *pgxpool.Pool { return c.pool }

// Close releases the pool.
func (c *Catalog) Close() { c.pool.Close() }

// Invalidate forgets cached keys and types (after any schema change).
func (c *Catalog) Invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.keys)
	clear(c.types)
}

// cachedLookup answers from cache under mu, or loads and remembers; the maps are never replaced, only cleared.
func cachedLookup[V any](mu *sync.Mutex, cache map[string]V, table string, load func() (V, error)) (V, error) {
	mu.Lock()
	cached, ok := cache[table]
	mu.Unlock()
	if ok {
		return cached, nil
	}
	value, err := load()
	if err != nil {
		return value, err
	}
	mu.Lock()
	cache[table] = value
	mu.Unlock()
	return value, nil
}

// PrimaryKey returns the primary-key columns of a table in the public schema.
func (c *Catalog) PrimaryKey(table string) ([]string, error) {
	return cachedLookup(&c.mu, c.keys, table, func() ([]string, error) { return c.loadPrimaryKey(table) })
}

func (c *Catalog) loadPrimaryKey(table string) ([]string, error) {
	rows, err := c.pool.Query(context.Background(), `
		SELECT a.attname FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
		WHERE i.indrelid = to_regclass('public.' || quote_ident($1)) AND i.indisprimary
		ORDER BY array_position(i.indkey, a.attnum)`, table)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// ColumnTypes maps a table's columns to their type names (pg_type.typname: bytea, jsonb, uuid, ...).
func (c *Catalog) ColumnTypes(table string) (map[string]string, error) {
	return cachedLookup(&c.mu, c.types, table, func() (map[string]string, error) { return c.loadColumnTypes(table) })
}

func (c *Catalog) loadColumnTypes(table string) (map[string]string, error) {
	rows, err := c.pool.Query(context.Background(), `
		SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = to_regclass('public.' || quote_ident($1)) AND a.attnum > 0 AND NOT a.attisdropped`, table)
	if err != nil {
		return nil, err
	}
	types := map[string]string{}
	var name, kind string
	_, err = pgx.ForEachRow(rows, []any{&name, &kind}, func() error { types[name] = kind; return nil })
	if err != nil {
		return nil, err
	}
	return types, nil
}

// RelationExists reports whether a table or index of that name exists in the public schema.
func (c *Catalog) RelationExists(name string) (bool, error) {
	var exists bool
	err := c.pool.QueryRow(context.Background(), `SELECT to_regclass('public.' || quote_ident($1)) IS NOT NULL`, name).Scan(&exists)
	return exists, err
}

// GuardAll puts the limit triggers on every table of the public schema that lacks them.
func (c *Catalog) GuardAll(ctx context.Context) error {
	rows, err := c.pool.Query(ctx, `
		SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind = 'r'`)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, table := range tables {
		if err := c.Guard(ctx, table); err != nil {
			return err
		}
	}
	return nil
}

// Guard puts the row-limit and key-size triggers on one table (a no-op if they are there), replacing the
// first version's triggers where a data directory still has them.
func (c *Catalog) Guard(ctx context.Context, table string) error {
	key, err := c.PrimaryKey(table)
	if err != nil {
		return err
	}
	sizes := []string{"0"}
	for _, column := range key {
		sizes = append(sizes, fmt.Sprintf("coalesce(pg_column_size(%s), 0)", pgx.Identifier{column}.Sanitize()))
	}
	relation := "public." + pgx.Identifier{table}.Sanitize()
	var oid uint32
	var present []string
	if err := c.pool.QueryRow(ctx, `SELECT c.oid, coalesce(array_agg(t.tgname::text) FILTER (WHERE t.tgname IS NOT NULL), '{}')
		FROM pg_class c LEFT JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgname LIKE $2 || '%'
		WHERE c.oid = to_regclass($1) GROUP BY c.oid`, relation, legacyTrigger).Scan(&oid, &present); err != nil {
		return fmt.Errorf("guarding %s: %w", table, err)
	}
	// Named by the table's oid: a table name may be 63 bytes already.
	function := fmt.Sprintf("limits_%d", oid)
	statements := []string{limitsFunction(function, strings.Join(sizes, " + "))}
	for _, name := range present {
		if !strings.HasPrefix(name, triggerName+"_") {
			statements = append(statements, fmt.Sprintf("DROP TRIGGER %s ON %s", pgx.Identifier{name}.Sanitize(), relation))
		}
	}
	for _, event := range []string{"insert", "update", "delete"} {
		name := triggerName + "_" + event
		if slices.Contains(present, name) {
			continue
		}
		transition := "NEW TABLE AS new_rows"
		if event == "delete" {
			transition = "OLD TABLE AS old_rows"
		}
		statements = append(statements, fmt.Sprintf(
			"CREATE TRIGGER %s AFTER %s ON %s REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION dsql_local.%s()",
			pgx.Identifier{name}.Sanitize(), strings.ToUpper(event), relation, transition, function))
	}
	for _, statement := range statements {
		if _, err := c.pool.Exec(ctx, statement); err != nil {
			return fmt.Errorf("guarding %s: %w", table, err)
		}
	}
	return nil
}
