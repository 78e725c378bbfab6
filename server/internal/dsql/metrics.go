package dsql

import (
	"database/sql"
	"errors"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/server/common/metrics"
)

// Metrics the plugin adds to Temporal's own, through the metrics handler Temporal gives it, so they reach
// whatever Temporal exports to (Prometheus here) with the service's own tags.
const (
	poolOpenMetric     = "dsql_pool_open_connections"
	poolInUseMetric    = "dsql_pool_in_use_connections"
	poolIdleMetric     = "dsql_pool_idle_connections"
	poolMaxOpenMetric  = "dsql_pool_max_open_connections"
	poolWaitsMetric    = "dsql_pool_waits"            // callers that had to wait for a free connection
	connectsMetric     = "dsql_connects"              // outcome: ok, throttled (refused for rate or count), failed
	rateLimitedMetric  = "dsql_connects_rate_limited" // new connections the plugin itself held back
	tokenMintsMetric   = "dsql_token_mints"           // outcome: ok, failed
	tokenLatencyMetric = "dsql_token_mint_latency"
	conflictsMetric    = "dsql_conflicts"           // code: OC000, OC001, 40001 (no code); at: statement, commit
	replaysMetric      = "dsql_transaction_replays" // outcome: replayed, changed, failed
	statementMetric    = "dsql_statement_latency"   // operation: select, insert, update, delete, begin, commit, ...
	// Values over DSQL's column limit stored in pieces (chunks.go); table, operation: write, read.
	chunkedValuesMetric   = "dsql_chunked_values"
	chunkedBytesMetric    = "dsql_chunked_bytes"
	chunkStatementsMetric = "dsql_chunk_statements" // the round trips their pieces took
)

// Upstream reports pool use once a minute; the pool's figures are sampled more often so a dashboard with a
// 15 s scrape sees bursts.
const poolReportInterval = 10 * time.Second

// record is a nil-safe counter increment: the plugin's tests and tools run without a handler.
func record(handler metrics.Handler, name string, tags ...metrics.Tag) {
	if handler != nil {
		handler.Counter(name).Record(1, tags...)
	}
}

func recordLatency(handler metrics.Handler, name string, since time.Time, tags ...metrics.Tag) {
	if handler != nil {
		handler.Timer(name).Record(time.Since(since), tags...)
	}
}

var conflictCode = regexp.MustCompile(`\((OC\d{3})\)`)

// conflictCodeOf is DSQL's OCC code from the error text (`... please retry: (OC000)`), or the SQLSTATE.
func conflictCodeOf(err error) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return "unknown"
	}
	if match := conflictCode.FindStringSubmatch(pgErr.Message); match != nil {
		return match[1]
	}
	return pgErr.Code
}

// connectOutcome sorts a failed or successful connection attempt: DSQL refuses new connections past its
// connection rate (53400) or count (53300); anything else is a failure.
func connectOutcome(err error) string {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &pgErr) && (pgErr.Code == "53400" || pgErr.Code == "53300"):
		return "throttled"
	default:
		return "failed"
	}
}

// operationOf is the statement's first keyword, lower-cased (a fixed, small set of label values).
func operationOf(query string) string {
	word, _, _ := strings.Cut(strings.TrimSpace(query), " ")
	switch operation := strings.ToLower(word); operation {
	case "select", "insert", "update", "delete", "begin", "commit", "rollback", "with":
		return operation
	default:
		return "other"
	}
}

// poolReporter samples the pools one connector opened (a handle reconnects by opening a new one) and
// records their sum, tagged with the kind of database.
type poolReporter struct {
	handler metrics.Handler
	mu      sync.Mutex
	pools   map[*sql.DB]int64 // each live pool and its wait count at the last sample
	start   sync.Once
}

func newPoolReporter(handler metrics.Handler) *poolReporter {
	return &poolReporter{handler: handler, pools: map[*sql.DB]int64{}}
}

func (r *poolReporter) add(db *sql.DB) {
	if r.handler == nil {
		return
	}
	r.mu.Lock()
	r.pools[db] = 0
	r.mu.Unlock()
	r.start.Do(func() { go r.run() })
}

func (r *poolReporter) remove(db *sql.DB) {
	r.mu.Lock()
	delete(r.pools, db)
	r.mu.Unlock()
}

// run lasts as long as the process: the connector, and so its pools, does too.
func (r *poolReporter) run() {
	for {
		r.report()
		time.Sleep(poolReportInterval)
	}
}

func (r *poolReporter) report() {
	var open, inUse, idle, maxOpen, waits int64
	r.mu.Lock()
	for db, lastWaits := range r.pools {
		stats := db.Stats()
		open += int64(stats.OpenConnections)
		inUse += int64(stats.InUse)
		idle += int64(stats.Idle)
		maxOpen += int64(stats.MaxOpenConnections)
		waits += stats.WaitCount - lastWaits
		r.pools[db] = stats.WaitCount
	}
	r.mu.Unlock()
	r.handler.Gauge(poolOpenMetric).Record(float64(open))
	r.handler.Gauge(poolInUseMetric).Record(float64(inUse))
	r.handler.Gauge(poolIdleMetric).Record(float64(idle))
	r.handler.Gauge(poolMaxOpenMetric).Record(float64(maxOpen))
	r.handler.Counter(poolWaitsMetric).Record(waits)
}
