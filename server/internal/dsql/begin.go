package dsql

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
	"go.temporal.io/server/common/metrics"
)

// Every round trip to DSQL costs milliseconds (more across Regions), and BEGIN is one that carries nothing:
// the plugin holds it back and sends it in one pipeline with the transaction's first statement. A
// transaction that sends no statement costs nothing at all, its COMMIT included.

// beginStatement is the BEGIN for database/sql's options; DSQL runs every transaction at REPEATABLE READ.
func beginStatement(options driver.TxOptions) (string, error) {
	switch level := sql.IsolationLevel(options.Isolation); level {
	case sql.LevelDefault, sql.LevelRepeatableRead:
	default:
		return "", fmt.Errorf("dsql: isolation level %v is not available: DSQL runs every transaction at "+
			"REPEATABLE READ", level)
	}
	if options.ReadOnly {
		return "begin read only", nil
	}
	return "begin", nil
}

// pgxConn is the pgx connection under database/sql's, where there is one: always in service; the unit
// tests' fake servers have none, and get the BEGIN as a statement of its own.
func (c *replayingConn) pgxConn() (*pgx.Conn, bool) {
	wrapped, ok := c.Conn.(*stdlib.Conn)
	if !ok {
		return nil, false
	}
	return wrapped.Conn(), true
}

// sendPendingBegin sends a held-back BEGIN on its own (before a statement that cannot carry it).
func (c *replayingConn) sendPendingBegin(ctx context.Context) error {
	if !c.recorder.beginPending {
		return nil
	}
	defer recordLatency(c.metrics, statementMetric, time.Now(), metrics.OperationTag("begin"))
	c.recorder.beginPending = false
	_, err := c.Conn.(driver.ExecerContext).ExecContext(ctx, c.recorder.begin, nil)
	return err
}

// withPendingBegin runs a transaction's first statement together with its held-back BEGIN, in one round trip
// (ran), where the statement can go in a pipeline (pipelinable) over pgx; otherwise it sends a pending BEGIN
// alone, and the caller runs the statement.
func (c *replayingConn) withPendingBegin(ctx context.Context, query string, args []driver.NamedValue,
	pipelinable bool,
) (result *pipelinedResult, ran bool, err error) {
	if conn, ok := c.pgxConn(); ok && c.recorder.beginPending && pipelinable {
		result, err := c.runWithPendingBegin(ctx, conn, query, args)
		return result, true, err
	}
	return nil, false, c.sendPendingBegin(ctx)
}

// pipelinedResult is what a statement sent with BEGIN returned, read in full.
type pipelinedResult struct {
	columns  []string
	rows     [][]driver.Value
	affected int64
}

func (r *pipelinedResult) LastInsertId() (int64, error) {
	return 0, errors.New("dsql: LastInsertId is not supported by PostgreSQL's protocol")
}
func (r *pipelinedResult) RowsAffected() (int64, error) { return r.affected, nil }

// maxDescriptions bounds a connection's described statements (Temporal's first statements are a few dozen).
const maxDescriptions = 256

// descriptions are a connection's described statements: their parameter and column types. They live in the
// plugin, not on the server (each pipeline parses its statement unnamed, as pgx's describe-cache mode does), and
// one is forgotten when its statement fails, so a schema change is described again.
type descriptions map[string]*pgconn.StatementDescription

func (d *descriptions) describe(ctx context.Context, conn *pgconn.PgConn, query string,
) (*pgconn.StatementDescription, error) {
	if described, ok := (*d)[query]; ok {
		return described, nil
	}
	described, err := conn.Prepare(ctx, "", query, nil)
	if err != nil {
		return nil, err
	}
	if *d == nil || len(*d) >= maxDescriptions {
		*d = descriptions{}
	}
	(*d)[query] = described
	return described, nil
}

// runWithPendingBegin runs a transaction's first statement, with the held-back BEGIN in the same round trip.
func (c *replayingConn) runWithPendingBegin(ctx context.Context, conn *pgx.Conn, query string,
	args []driver.NamedValue,
) (*pipelinedResult, error) {
	description, err := c.described.describe(ctx, conn.PgConn(), query)
	if err != nil {
		return nil, err
	}
	values := make([]any, len(args))
	for i, arg := range args {
		values[i] = arg.Value
	}
	var builder pgx.ExtendedQueryBuilder
	if err := builder.Build(conn.TypeMap(), description, values); err != nil {
		return nil, err
	}
	pipeline := conn.PgConn().StartPipeline(ctx)
	pipeline.SendQueryParams(c.recorder.begin, nil, nil, nil, nil)
	pipeline.SendQueryParams(query, builder.ParamValues, description.ParamOIDs, builder.ParamFormats,
		resultFormats(description))
	result, begun, err := readPipeline(pipeline, conn.TypeMap())
	if closeErr := pipeline.Close(); err == nil { // Close reads what an error left unread
		err = closeErr
	}
	c.recorder.beginPending = !begun
	if err != nil {
		delete(c.described, query)
		return nil, err
	}
	return result, nil
}

// readPipeline reads BEGIN's result (begun: the server opened the transaction), then the statement's.
func readPipeline(pipeline *pgconn.Pipeline, types *pgtype.Map) (result *pipelinedResult, begun bool, err error) {
	if err := pipeline.Sync(); err != nil {
		return nil, false, err
	}
	opened, err := nextResult(pipeline)
	if err != nil {
		return nil, false, err
	}
	if _, err := opened.Close(); err != nil {
		return nil, false, err
	}
	reader, err := nextResult(pipeline)
	if err != nil {
		return nil, true, err
	}
	if result, err = readResult(reader, types); err != nil {
		return nil, true, err
	}
	if _, err := pipeline.GetResults(); err != nil { // the Sync's
		return nil, true, err
	}
	return result, true, nil
}

// nextResult is the result of the pipeline's next statement.
func nextResult(pipeline *pgconn.Pipeline) (*pgconn.ResultReader, error) {
	results, err := pipeline.GetResults()
	if err != nil {
		return nil, err
	}
	reader, ok := results.(*pgconn.ResultReader)
	if !ok {
		return nil, fmt.Errorf("dsql: the pipeline answered %T where a statement's result was due", results)
	}
	return reader, nil
}

func readResult(reader *pgconn.ResultReader, types *pgtype.Map) (*pipelinedResult, error) {
	fields := reader.FieldDescriptions()
	result := &pipelinedResult{columns: make([]string, len(fields))}
	decoders := make([]valueDecoder, len(fields))
	for i, field := range fields {
		result.columns[i], decoders[i] = field.Name, databaseSQLDecoder(types, field)
	}
	for reader.NextRow() {
		row := make([]driver.Value, len(fields))
		for i, raw := range reader.Values() {
			if raw == nil {
				continue
			}
			value, err := decoders[i](raw)
			if err != nil {
				_, _ = reader.Close()
				return nil, fmt.Errorf("dsql: reading column %q: %w", fields[i].Name, err)
			}
			row[i] = value
		}
		result.rows = append(result.rows, row)
	}
	tag, err := reader.Close()
	if err != nil {
		return nil, err
	}
	result.affected = tag.RowsAffected()
	return result, nil
}

// binaryResultTypes are the types pgx's database/sql driver asks in binary; the rest come as text. The same
// formats give the same values (TestPipelinedValuesAreStdlibs holds the two paths together).
var binaryResultTypes = map[uint32]bool{
	pgtype.BoolOID: true, pgtype.ByteaOID: true, pgtype.CIDOID: true, pgtype.DateOID: true,
	pgtype.Float4OID: true, pgtype.Float8OID: true, pgtype.Int2OID: true, pgtype.Int4OID: true,
	pgtype.Int8OID: true, pgtype.OIDOID: true, pgtype.TimestampOID: true, pgtype.TimestamptzOID: true,
	pgtype.XIDOID: true,
}

func resultFormats(description *pgconn.StatementDescription) []int16 {
	formats := make([]int16, len(description.Fields))
	for i, field := range description.Fields {
		if binaryResultTypes[field.DataTypeOID] {
			formats[i] = pgtype.BinaryFormatCode
		}
	}
	return formats
}

type valueDecoder func(raw []byte) (driver.Value, error)

// decodeAs scans a column into T and hands database/sql what asValue makes of it.
func decodeAs[T any](types *pgtype.Map, field pgconn.FieldDescription, asValue func(T) (driver.Value, error),
) valueDecoder {
	var target T
	plan := types.PlanScan(field.DataTypeOID, field.Format, &target)
	return func(raw []byte) (driver.Value, error) {
		if err := plan.Scan(raw, &target); err != nil {
			return nil, err
		}
		return asValue(target)
	}
}

func itself[T driver.Value](value T) (driver.Value, error) { return value, nil }

func copied(value []byte) (driver.Value, error) { return bytes.Clone(value), nil }

func widened[T int16 | int32](value T) (driver.Value, error) { return int64(value), nil }

func valuer[T driver.Valuer](value T) (driver.Value, error) { return value.Value() }

// databaseSQLDecoder turns a column's wire value into the Go value pgx's database/sql driver hands over
// for its type, so Temporal scans the same values whichever path read them.
func databaseSQLDecoder(types *pgtype.Map, field pgconn.FieldDescription) valueDecoder {
	switch field.DataTypeOID {
	case pgtype.BoolOID:
		return decodeAs(types, field, itself[bool])
	case pgtype.ByteaOID, pgtype.JSONOID, pgtype.JSONBOID, pgtype.XMLOID:
		return decodeAs(types, field, copied)
	case pgtype.CIDOID, pgtype.OIDOID, pgtype.XIDOID:
		return decodeAs(types, field, valuer[pgtype.Uint32])
	case pgtype.DateOID:
		return decodeAs(types, field, valuer[pgtype.Date])
	case pgtype.Float4OID:
		return decodeAs(types, field, func(value float32) (driver.Value, error) { return float64(value), nil })
	case pgtype.Float8OID:
		return decodeAs(types, field, itself[float64])
	case pgtype.Int2OID:
		return decodeAs(types, field, widened[int16])
	case pgtype.Int4OID:
		return decodeAs(types, field, widened[int32])
	case pgtype.Int8OID:
		return decodeAs(types, field, itself[int64])
	case pgtype.TimestampOID:
		return decodeAs(types, field, valuer[pgtype.Timestamp])
	case pgtype.TimestamptzOID:
		return decodeAs(types, field, valuer[pgtype.Timestamptz])
	default:
		return decodeAs(types, field, itself[string])
	}
}
