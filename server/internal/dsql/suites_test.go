package dsql

import (
	"context"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/stretchr/testify/suite"
	"go.temporal.io/server/common/auth"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/metrics"
	"go.temporal.io/server/common/persistence/sql"
	"go.temporal.io/server/common/persistence/sql/sqlplugin"
	"go.temporal.io/server/common/persistence/sql/sqlplugin/tests"
	"go.temporal.io/server/common/resolver"
)

// suiteConfig is the plugin's configuration for the endpoint in DSQL_SUITES_ADDR.
func suiteConfig() *config.SQL {
	return &config.SQL{
		PluginName: PluginName, ConnectAddr: os.Getenv("DSQL_SUITES_ADDR"), ConnectProtocol: "tcp", User: "admin",
		DatabaseName: "postgres", MaxConns: 10, MaxIdleConns: 10,
		TLS: &auth.TLS{Enabled: true, CaFile: os.Getenv("DSQL_SUITES_CA")},
	}
}

// upstreamDB opens the plugin against the DSQL endpoint the suites run on: DSQL_SUITES_ADDR (host:port),
// DSQL_SUITES_CA (its CA), AWS credentials and AWS_REGION in the environment, the DSQL schema applied.
func upstreamDB(t *testing.T) sqlplugin.DB {
	t.Helper()
	address := os.Getenv("DSQL_SUITES_ADDR")
	if address == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("DSQL_SUITES_ADDR is not set: upstream's suites need a DSQL endpoint with the DSQL schema")
		}
		t.Skip("DSQL_SUITES_ADDR is not set: no DSQL endpoint to run upstream's suites on (nox -s integration runs them)")
	}
	db, err := sql.NewSQLDB(sqlplugin.DbKindMain, suiteConfig(), resolver.NewNoopResolver(), log.NewTestLogger(),
		metrics.NoopMetricsHandler)
	if err != nil {
		t.Fatalf("opening the dsql plugin at %s: %v", address, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// The suites expect a database of their own, and DSQL has one: the queue suites reuse fixed queue names,
// so their tables are emptied first (the other suites key their rows on random ids).
var reusedTables = []string{"queues", "queue_messages", "queue", "queue_metadata"}

func TestUpstreamSQLPluginSuites(t *testing.T) {
	db := upstreamDB(t)
	admin, ok := db.(sqlplugin.AdminDB)
	if !ok {
		t.Fatal("the plugin's database is not an AdminDB")
	}
	for _, table := range reusedTables {
		if err := admin.Exec("DELETE FROM " + table); err != nil {
			t.Fatalf("emptying %s: %v", table, err)
		}
	}
	suites := map[string]func(*testing.T) suite.TestingSuite{
		"HistoryShard":           func(t *testing.T) suite.TestingSuite { return tests.NewHistoryShardSuite(t, db) },
		"HistoryNode":            func(t *testing.T) suite.TestingSuite { return tests.NewHistoryNodeSuite(t, db) },
		"HistoryTree":            func(t *testing.T) suite.TestingSuite { return tests.NewHistoryTreeSuite(t, db) },
		"HistoryExecution":       func(t *testing.T) suite.TestingSuite { return tests.NewHistoryExecutionSuite(t, db) },
		"HistoryCurrentExec":     func(t *testing.T) suite.TestingSuite { return newHistoryCurrentExecutionSuite(t, db) },
		"HistoryExecutionBuffer": func(t *testing.T) suite.TestingSuite { return tests.NewHistoryExecutionBufferSuite(t, db) },
		"MatchingTask":           func(t *testing.T) suite.TestingSuite { return tests.NewMatchingTaskSuite(t, db) },
		"MatchingTaskQueueV1": func(t *testing.T) suite.TestingSuite {
			return tests.NewMatchingTaskQueueSuite(t, db, sqlplugin.MatchingTaskVersion1)
		},
		"MatchingTaskQueueV2": func(t *testing.T) suite.TestingSuite {
			return tests.NewMatchingTaskQueueSuite(t, db, sqlplugin.MatchingTaskVersion2)
		},
		"MatchingTaskV2":     func(t *testing.T) suite.TestingSuite { return tests.NewMatchingTaskV2Suite(t, db) },
		"Namespace":          func(t *testing.T) suite.TestingSuite { return tests.NewNamespaceSuite(t, db) },
		"QueueMessage":       func(t *testing.T) suite.TestingSuite { return tests.NewQueueMessageSuite(t, db) },
		"QueueMetadata":      func(t *testing.T) suite.TestingSuite { return tests.NewQueueMetadataSuite(t, db) },
		"Activity":           func(t *testing.T) suite.TestingSuite { return tests.NewHistoryExecutionActivitySuite(t, db) },
		"Chasm":              func(t *testing.T) suite.TestingSuite { return tests.NewHistoryExecutionChasmSuite(t, db) },
		"ChildWorkflow":      func(t *testing.T) suite.TestingSuite { return tests.NewHistoryExecutionChildWorkflowSuite(t, db) },
		"RequestCancel":      func(t *testing.T) suite.TestingSuite { return tests.NewHistoryExecutionRequestCancelSuite(t, db) },
		"Signal":             func(t *testing.T) suite.TestingSuite { return tests.NewHistoryExecutionSignalSuite(t, db) },
		"SignalRequest":      func(t *testing.T) suite.TestingSuite { return tests.NewHistoryExecutionSignalRequestSuite(t, db) },
		"Timer":              func(t *testing.T) suite.TestingSuite { return tests.NewHistoryExecutionTimerSuite(t, db) },
		"ReplicationTask":    func(t *testing.T) suite.TestingSuite { return tests.NewHistoryReplicationTaskSuite(t, db) },
		"ReplicationDLQTask": func(t *testing.T) suite.TestingSuite { return tests.NewHistoryReplicationDLQTaskSuite(t, db) },
		"TimerTask":          func(t *testing.T) suite.TestingSuite { return tests.NewHistoryTimerTaskSuite(t, db) },
		"TransferTask":       func(t *testing.T) suite.TestingSuite { return tests.NewHistoryTransferTaskSuite(t, db) },
		"VisibilityTask":     func(t *testing.T) suite.TestingSuite { return tests.NewHistoryVisibilityTaskSuite(t, db) },
	}
	for name, make := range suites {
		t.Run(name, func(t *testing.T) { suite.Run(t, make(t)) })
	}
	t.Run("QueueV2", func(t *testing.T) { tests.RunSQLQueueV2TestSuite(t, db) })
}

// TestLiveRangeDeleteBeyondTheRowLimit deletes 5,000 acknowledged tasks in one upstream call, which DSQL
// refuses as one transaction.
func TestLiveRangeDeleteBeyondTheRowLimit(t *testing.T) {
	db := upstreamDB(t)
	ctx := context.Background()
	shard := rand.Int32N(1 << 30)
	for start := int64(0); start < 5000; start += 2500 {
		rows := make([]sqlplugin.HistoryImmediateTasksRow, 0, 2500)
		for id := start; id < start+2500; id++ {
			rows = append(rows, sqlplugin.HistoryImmediateTasksRow{ShardID: shard, CategoryID: 1, TaskID: id,
				Data: []byte("task"), DataEncoding: "Proto3"})
		}
		if _, err := db.InsertIntoHistoryImmediateTasks(ctx, rows); err != nil {
			t.Fatalf("inserting tasks: %v", err)
		}
	}
	result, err := db.RangeDeleteFromHistoryImmediateTasks(ctx, sqlplugin.HistoryImmediateTasksRangeFilter{
		ShardID: shard, CategoryID: 1, InclusiveMinTaskID: 0, ExclusiveMaxTaskID: 5000})
	if err != nil {
		t.Fatalf("the range delete failed: %v", err)
	}
	if deleted, _ := result.RowsAffected(); deleted != 5000 {
		t.Fatalf("deleted %d rows, want 5000", deleted)
	}
	left, err := db.RangeSelectFromHistoryImmediateTasks(ctx, sqlplugin.HistoryImmediateTasksRangeFilter{
		ShardID: shard, CategoryID: 1, InclusiveMinTaskID: 0, ExclusiveMaxTaskID: 5000, PageSize: 10})
	if err != nil || len(left) != 0 {
		t.Fatalf("left %d rows (%v)", len(left), err)
	}
}
