package dsql

import (
	"testing"

	"github.com/stretchr/testify/suite"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/persistence/serialization"
	persistencetests "go.temporal.io/server/common/persistence/tests"
)

// TestUpstreamPersistenceSuites runs upstream's store-level suites (the shard suite includes the
// ownership-lost cases: a stale owner's write refused) through the plugin.
func TestUpstreamPersistenceSuites(t *testing.T) {
	db := upstreamDB(t) // skips or fails as upstreamDB does; the factory below opens its own pools
	_ = db
	cfg := suiteConfig()
	logger := log.NewTestLogger()
	serializer := serialization.NewSerializer()
	factory := newSQLFactory(*cfg, logger, serializer)
	t.Cleanup(factory.Close)
	shards, err := factory.NewShardStore()
	if err != nil {
		t.Fatal(err)
	}
	executions, err := factory.NewExecutionStore()
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := factory.NewTaskStore()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("Shard", func(t *testing.T) {
		suite.Run(t, persistencetests.NewShardSuite(t, shards, serializer, logger))
	})
	t.Run("ExecutionMutableState", func(t *testing.T) {
		suite.Run(t, newExecutionMutableStateSuite(t, shards, executions, serializer, logger))
	})
	t.Run("ExecutionMutableStateTask", func(t *testing.T) {
		suite.Run(t, persistencetests.NewExecutionMutableStateTaskSuite(t, shards, executions, serializer, logger))
	})
	t.Run("HistoryEvents", func(t *testing.T) {
		suite.Run(t, persistencetests.NewHistoryEventsSuite(t, executions, logger))
	})
	t.Run("TaskQueue", func(t *testing.T) { suite.Run(t, persistencetests.NewTaskQueueSuite(t, tasks, logger)) })
	t.Run("TaskQueueTask", func(t *testing.T) { suite.Run(t, persistencetests.NewTaskQueueTaskSuite(t, tasks, logger)) })
	t.Run("QueueV2", func(t *testing.T) { persistencetests.RunQueueV2TestSuiteForSQL(t, factory) })
	t.Run("NexusEndpoint", func(t *testing.T) { persistencetests.RunNexusEndpointTestSuiteForSQL(t, factory) })
}
