//go:build temporal_1_30

package dsql

import (
	"testing"

	"github.com/stretchr/testify/suite"
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
	filter := sqlplugin.CurrentExecutionsFilter{ShardID: 2, NamespaceID: primitives.NewUUID(), WorkflowID: "w"}
	lockThenJoin(t, filter, currentJoinExecutionsQuery)
}

// Upstream's constructors as 1.30 has them.

func newSQLFactory(cfg config.SQL, logger log.Logger, _ serialization.Serializer) *sql.Factory {
	return sql.NewFactory(cfg, resolver.NewNoopResolver(), "active", logger, metrics.NoopMetricsHandler)
}

func newExecutionMutableStateSuite(t *testing.T, shards persistence.ShardStore, executions persistence.ExecutionStore,
	serializer serialization.Serializer, logger log.Logger) suite.TestingSuite {
	return persistencetests.NewExecutionMutableStateSuite(t, shards, executions, serializer,
		&persistence.HistoryBranchUtilImpl{}, logger)
}

func newHistoryCurrentExecutionSuite(t *testing.T, db sqlplugin.HistoryExecution) suite.TestingSuite {
	return sqltests.NewHistoryCurrentExecutionSuite(t, db)
}
