//go:build !temporal_1_30

package dsql

import (
	"testing"

	"github.com/stretchr/testify/suite"
	"go.temporal.io/server/chasm"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/metrics"
	"go.temporal.io/server/common/persistence"
	"go.temporal.io/server/common/persistence/serialization"
	"go.temporal.io/server/common/persistence/sql"
	"go.temporal.io/server/common/persistence/sql/sqlplugin"
	sqltests "go.temporal.io/server/common/persistence/sql/sqlplugin/tests"
	persistencetests "go.temporal.io/server/common/persistence/tests"
	"go.temporal.io/server/common/primitives"
	"go.temporal.io/server/common/resolver"
)

func TestTheCurrentRowIsLockedOnItsKeyThenJoined(t *testing.T) {
	wanted := map[chasm.ArchetypeID]string{
		chasm.WorkflowArchetypeID:     currentJoinExecutionsQuery,
		chasm.WorkflowArchetypeID + 1: currentChasmJoinExecutionsQuery,
	}
	for archetype, query := range wanted {
		filter := sqlplugin.CurrentExecutionsFilter{ShardID: 2, NamespaceID: primitives.NewUUID(), WorkflowID: "w",
			ArchetypeID: archetype}
		if rows := lockThenJoin(t, filter, query); rows[0].ArchetypeID != archetype {
			t.Fatalf("archetype %d: rows %+v", archetype, rows)
		}
	}
}

// Upstream's constructors whose signatures changed in 1.31.

func newSQLFactory(cfg config.SQL, logger log.Logger, serializer serialization.Serializer) *sql.Factory {
	return sql.NewFactory(cfg, resolver.NewNoopResolver(), "active", logger, metrics.NoopMetricsHandler, serializer)
}

func newExecutionMutableStateSuite(t *testing.T, shards persistence.ShardStore, executions persistence.ExecutionStore,
	serializer serialization.Serializer, logger log.Logger) suite.TestingSuite {
	return persistencetests.NewExecutionMutableStateSuite(t, shards, executions, serializer, logger)
}

func newHistoryCurrentExecutionSuite(t *testing.T, db sqlplugin.HistoryExecution) suite.TestingSuite {
	return sqltests.NewHistoryCurrentExecutionSuite(t, db, chasm.WorkflowArchetypeID)
}
