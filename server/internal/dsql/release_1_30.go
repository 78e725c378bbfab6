//go:build temporal_1_30

package dsql

import "go.temporal.io/server/common/persistence/sql/sqlplugin"

// Temporal 1.30 keeps every current row in current_executions: there are no archetypes yet.

// currentJoin is the join of filter's current row with its execution, and the query's arguments.
func currentJoin(filter sqlplugin.CurrentExecutionsFilter) (string, []any) {
	return currentJoinExecutionsQuery, []any{filter.ShardID, filter.NamespaceID, filter.WorkflowID}
}

// withArchetype has nothing to mark before 1.31.
func withArchetype([]sqlplugin.CurrentExecutionsRow, sqlplugin.CurrentExecutionsFilter) {}
