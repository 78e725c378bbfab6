//go:build !temporal_1_30

package dsql

import (
	"go.temporal.io/server/chasm"
	"go.temporal.io/server/common/persistence/sql/sqlplugin"
)

// From 1.31 the current row of an execution that is not a workflow (a CHASM archetype) lives in a table of its
// own, current_chasm_executions, keyed by archetype.

const currentChasmJoinExecutionsQuery = `SELECT ce.shard_id, ce.namespace_id, ce.business_id AS workflow_id, ` +
	`ce.run_id, ce.create_request_id, ce.state, ce.status, ce.start_time, e.last_write_version, ce.data, ` +
	`ce.data_encoding FROM current_chasm_executions ce INNER JOIN executions e ON e.shard_id = ce.shard_id AND ` +
	`e.namespace_id = ce.namespace_id AND e.workflow_id = ce.business_id AND e.run_id = ce.run_id ` +
	`WHERE ce.shard_id = $1 AND ce.namespace_id = $2 AND ce.business_id = $3 AND ce.archetype_id = $4`

// currentJoin is the join of filter's current row with its execution, and the query's arguments.
func currentJoin(filter sqlplugin.CurrentExecutionsFilter) (string, []any) {
	args := []any{filter.ShardID, filter.NamespaceID, filter.WorkflowID}
	if filter.ArchetypeID != chasm.WorkflowArchetypeID {
		return currentChasmJoinExecutionsQuery, append(args, filter.ArchetypeID)
	}
	return currentJoinExecutionsQuery, args
}

// withArchetype marks rows with the archetype they were read for (no column holds it).
func withArchetype(rows []sqlplugin.CurrentExecutionsRow, filter sqlplugin.CurrentExecutionsFilter) {
	for index := range rows {
		rows[index].ArchetypeID = filter.ArchetypeID
	}
}
