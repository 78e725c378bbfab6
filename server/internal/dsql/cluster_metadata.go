package dsql

import (
	"context"

	"go.temporal.io/server/common/persistence/sql/sqlplugin"
)

// cluster_membership: upstream's own statements, with the host ids it reads put back to bytes (ids.go).

var clusterMemberID = fromUUIDText("cluster_membership.host_id")

func hostID(row *sqlplugin.ClusterMembershipRow) *[]byte { return &row.HostID }

func (t *tables) GetClusterMembers(ctx context.Context, filter *sqlplugin.ClusterMembershipFilter) ([]sqlplugin.ClusterMembershipRow, error) {
	rows, err := t.TableCRUD.GetClusterMembers(ctx, filter)
	if err != nil {
		return nil, err
	}
	return rows, decodeIDs(rows, hostID, clusterMemberID)
}
