// Package backend prepares the PostgreSQL behind the stand-in and answers catalog questions about it.
//
// It owns what DSQL has and PostgreSQL lacks: the `sys.jobs` view of asynchronous index builds with
// `sys.wait_for_job`, and DSQL's size limits (1 KiB keys, 1 MiB columns, 2 MiB rows, 3,000 modified rows
// and 10 MiB modified per transaction), which are enforced inside PostgreSQL by statement triggers the
// stand-in puts on every table, so that the limit errors arrive in protocol order like any other
// statement error.
package backend

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Limits DSQL enforces per key, value, row and transaction (CHAP_quotas).
const (
	RowLimit         = 3000
	KeySizeMax       = 1024
	ColumnSizeMax    = 1 << 20  // a column that is not part of an index
	RowSizeMax       = 2 << 20  // a row
	TransactionBytes = 10 << 20 // all data modified in one write transaction
	// RowOverhead is added to each written row's size in the transaction's total, with the row's key: DSQL
	// counts a cost per row beyond its values (its accounting is not documented), so the stand-in does too.
	RowOverhead = 64
	// Each table's triggers call a function of its own with the key's size inlined, so PL/pgSQL keeps its plan;
	// the first triggers (prefix without "v2") called one shared function that planned dynamic SQL every time.
	// The function is replaced at every start and after every schema change of its table, so data directories
	// with older functions measure what this version measures.
	triggerName   = "dsql_local_limits_v2"
	legacyTrigger = "dsql_local_limits_"
)

// Column is a table column as the limit triggers measure it.
type Column struct {
	Name   string
	Type   string // pg_type.typname
	Length int    // pg_type.typlen: > 0 fixed width, -1 varlena, -2 C string
}

// measures is what a table's trigger function computes for each written row, as SQL over the transition
// table: the key's size, each secondary index key's size, each variable-width column's size, and the fixed
// widths' sum.
type measures struct {
	key     string   // the primary key's size: its columns' uncompressed sizes
	indexes []string // each secondary index key's size, measured the same way
	columns []string // the uncompressed size of each variable-width column
	fixed   int      // the fixed-width columns' sizes, counted whether NULL or not (stricter)
}

// size is the SQL for one column's size in a written row: a fixed width as PostgreSQL stores it, a text or
// bytea value's uncompressed octet length (read from the value's header without decompressing it), and the
// text form's length for other variable-width types (jsonb, json, numeric, ...). Never the compressed size.
func size(column Column) string {
	name := pgx.Identifier{column.Name}.Sanitize()
	switch {
	case column.Length > 0:
		return fmt.Sprintf("pg_column_size(%s)", name)
	case column.Type == "text" || column.Type == "varchar" || column.Type == "bpchar" || column.Type == "bytea":
		return fmt.Sprintf("octet_length(%s)", name)
	}
	return fmt.Sprintf("octet_length(%s::text)", name)
}

// keySize is the SQL for the combined size of some key columns.
func keySize(key []string, columns map[string]Column) string {
	sizes := []string{"0"}
	for _, name := range key {
		column, ok := columns[name]
		if !ok {
			column = Column{Name: name, Length: -2}
		}
		sizes = append(sizes, fmt.Sprintf("coalesce(%s, 0)", size(column)))
	}
	return strings.Join(sizes, " + ")
}

// measure builds the measures of a table from its primary key, its secondary indexes' key columns (an
// expression in an index is not measured) and its columns.
func measure(key []string, indexes [][]string, columns []Column) measures {
	byName := map[string]Column{}
	for _, column := range columns {
		byName[column.Name] = column
	}
	m := measures{key: keySize(key, byName)}
	for _, index := range indexes {
		if len(index) > 0 {
			m.indexes = append(m.indexes, keySize(index, byName))
		}
	}
	for _, column := range columns {
		if column.Length > 0 {
			m.fixed += column.Length
		} else {
			m.columns = append(m.columns, size(column))
		}
	}
	return m
}

// limitsFunction is a table's trigger function: count the statement's rows and bytes into the transaction's
// totals, and measure the widest key, column and row it wrote. Static SQL only: PL/pgSQL plans it once per
// connection. DSQL's messages (CHAP_quotas); DSQL checks the transaction's size at COMMIT, the stand-in at the
// statement that passes it.
func limitsFunction(name string, m measures) string {
	columns := []string{m.key + " AS k"}
	widestKey := "k"
	if len(m.indexes) > 0 {
		keys := []string{"k"}
		for i, expression := range m.indexes {
			columns = append(columns, fmt.Sprintf("%s AS i%d", expression, i))
			keys = append(keys, fmt.Sprintf("i%d", i))
		}
		widestKey = "greatest(" + strings.Join(keys, ", ") + ")"
	}
	widest := "0"
	row := []string{fmt.Sprint(m.fixed)}
	for i, expression := range m.columns {
		columns = append(columns, fmt.Sprintf("%s AS c%d", expression, i))
		row = append(row, fmt.Sprintf("coalesce(c%d, 0)", i))
	}
	if len(m.columns) > 0 {
		parts := make([]string, len(m.columns))
		for i := range m.columns {
			parts[i] = fmt.Sprintf("c%d", i)
		}
		widest = "greatest(" + strings.Join(parts, ", ") + ")"
	}
	return fmt.Sprintf(`CREATE OR REPLACE FUNCTION dsql_local.%[1]s() RETURNS trigger LANGUAGE plpgsql AS $$
	DECLARE
		changed bigint;
		written bigint;
		widest_key bigint := 0;
		widest_column bigint := 0;
		widest_row bigint := 0;
		total_rows bigint;
		total_bytes bigint;
	BEGIN
		IF TG_OP = 'DELETE' THEN
			SELECT count(*), coalesce(sum(%[2]s), 0) + count(*) * %[3]d INTO changed, written FROM old_rows;
		ELSE
			SELECT count(*), coalesce(max(%[12]s), 0), coalesce(max(%[4]s), 0), coalesce(max(r), 0),
				coalesce(sum(r + k), 0) + count(*) * %[3]d
			INTO changed, widest_key, widest_column, widest_row, written
			FROM (SELECT *, %[5]s AS r FROM (SELECT %[6]s FROM new_rows) measured) sized;
		END IF;
		total_rows := coalesce(nullif(current_setting('dsql_local.modified_rows', true), '')::bigint, 0) + changed;
		total_bytes := coalesce(nullif(current_setting('dsql_local.modified_bytes', true), '')::bigint, 0) + written;
		PERFORM set_config('dsql_local.modified_rows', total_rows::text, true), set_config('dsql_local.modified_bytes', total_bytes::text, true);
		IF total_rows > %[7]d THEN
			RAISE EXCEPTION 'transaction row limit exceeded' USING ERRCODE = '54000';
		END IF;
		IF widest_key > %[8]d THEN
			RAISE EXCEPTION 'key size too large' USING ERRCODE = '54000';
		END IF;
		IF widest_column > %[9]d THEN
			RAISE EXCEPTION 'maximum column size exceeded' USING ERRCODE = '54000';
		END IF;
		IF widest_row > %[10]d THEN
			RAISE EXCEPTION 'maximum row size exceeded' USING ERRCODE = '54000';
		END IF;
		IF total_bytes > %[11]d THEN
			RAISE EXCEPTION 'transaction size limit 10mb exceeded'
				USING ERRCODE = '54000', DETAIL = format('Current transaction size %%smb > 10mb', ceil(total_bytes / 1048576.0));
		END IF;
		RETURN NULL;
	END $$`, name, m.key, RowOverhead, widest, strings.Join(row, " + "), strings.Join(columns, ", "),
		RowLimit, KeySizeMax, ColumnSizeMax, RowSizeMax, TransactionBytes, widestKey)
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
	pool    *pgxpool.Pool
	mu      sync.Mutex
	keys    map[string][]string
	types   map[string]map[string]string
	guardMu sync.Mutex // one Guard at a time: two replacing one function at once would fail one of them
	// loginLocks: a *sync.Mutex per role, so that this process sets a role's backend password once at a time.
	loginLocks sync.Map
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
	if err := catalog.prepareIAM(ctx); err != nil {
		pool.Close()
		return nil, err
	}
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

// MayIndex says whether role may build an index on schema.table: PostgreSQL's rule, its owner or a member of
// the owning role; false for a table that is not there. (Index jobs run on the stand-in's own connections, as
// the backend role, so the session's role is checked here.)
func (c *Catalog) MayIndex(ctx context.Context, role, schema, table string) (bool, error) {
	if schema == "" {
		schema = "public"
	}
	var may bool
	err := c.pool.QueryRow(ctx, `SELECT coalesce((SELECT pg_has_role($1, c.relowner, 'USAGE')
		FROM pg_class c WHERE c.oid = to_regclass(quote_ident($2) || '.' || quote_ident($3))), false)`,
		role, schema, table).Scan(&may)
	return may, err
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

// Columns lists a table's live columns in order, with their types' names and widths.
func (c *Catalog) Columns(ctx context.Context, table string) ([]Column, error) {
	rows, err := c.pool.Query(ctx, `
		SELECT a.attname, t.typname, t.typlen FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = to_regclass('public.' || quote_ident($1)) AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, table)
	if err != nil {
		return nil, err
	}
	var columns []Column
	var column Column
	var length int16
	_, err = pgx.ForEachRow(rows, []any{&column.Name, &column.Type, &length}, func() error {
		column.Length = int(length)
		columns = append(columns, column)
		return nil
	})
	return columns, err
}

// SecondaryKeys lists the key columns of each index of a table other than its primary key (an expression
// is left out; INCLUDE columns are not key columns).
func (c *Catalog) SecondaryKeys(ctx context.Context, table string) ([][]string, error) {
	rows, err := c.pool.Query(ctx, `
		SELECT array_agg(a.attname::text ORDER BY k.position) FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = to_regclass('public.' || quote_ident($1)) AND NOT i.indisprimary AND k.position <= i.indnkeyatts
		GROUP BY i.indexrelid ORDER BY i.indexrelid`, table)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[[]string])
}

// IndexCount is how many indexes a table has (its primary key, its unique constraints' indexes, and every
// other index, built or still building), as DSQL counts them against its 24 per table.
func (c *Catalog) IndexCount(table string) (int, error) {
	var count int
	err := c.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_index WHERE indrelid = to_regclass('public.' || quote_ident($1))`,
		table).Scan(&count)
	return count, err
}

// Guard puts the limit triggers on one table (creating them where missing) and (re)writes the function they
// call from the table's current columns, replacing the first version's triggers where a data directory still
// has them. A name that is not a table of the public schema (dropped meanwhile, a view) is left alone.
func (c *Catalog) Guard(ctx context.Context, table string) error {
	c.guardMu.Lock()
	defer c.guardMu.Unlock()
	key, err := c.PrimaryKey(table)
	if err != nil {
		return err
	}
	columns, err := c.Columns(ctx, table)
	if err != nil {
		return fmt.Errorf("guarding %s: %w", table, err)
	}
	indexes, err := c.SecondaryKeys(ctx, table)
	if err != nil {
		return fmt.Errorf("guarding %s: %w", table, err)
	}
	relation := "public." + pgx.Identifier{table}.Sanitize()
	var oid uint32
	var present []string
	err = c.pool.QueryRow(ctx, `SELECT c.oid, coalesce(array_agg(t.tgname::text) FILTER (WHERE t.tgname IS NOT NULL), '{}')
		FROM pg_class c LEFT JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgname LIKE $2 || '%'
		WHERE c.oid = to_regclass($1) AND c.relkind = 'r' GROUP BY c.oid`, relation, legacyTrigger).Scan(&oid, &present)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("guarding %s: %w", table, err)
	}
	// Named by the table's oid: a table name may be 63 bytes already.
	function := fmt.Sprintf("limits_%d", oid)
	definition := limitsFunction(function, measure(key, indexes, columns))
	var statements []string
	var current string
	err = c.pool.QueryRow(ctx, `SELECT prosrc FROM pg_proc WHERE proname = $1 AND pronamespace = 'dsql_local'::regnamespace`,
		function).Scan(&current)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !strings.Contains(definition, "$$"+current+"$$")) {
		statements = append(statements, definition) // unchanged, it is left alone: replacing it would drop every session's plan
	} else if err != nil {
		return fmt.Errorf("guarding %s: %w", table, err)
	}
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
	if len(statements) == 0 {
		return nil
	}
	// In one transaction that holds the table against a concurrent DROP or ALTER (ROW SHARE: writers and an
	// index build go on), so a client's schema change waits for it and meets a conflict, never a torn catalog.
	err = pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "LOCK TABLE "+relation+" IN ROW SHARE MODE"); err != nil {
			return err
		}
		for _, statement := range statements {
			if _, err := tx.Exec(ctx, statement); err != nil {
				return err
			}
		}
		return nil
	})
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "42P01" {
		return nil // dropped meanwhile: nothing left to guard
	}
	if err != nil {
		return fmt.Errorf("guarding %s: %w", table, err)
	}
	return nil
}
