package dsql

import (
	"context"

	"go.temporal.io/server/common/persistence/sql/sqlplugin"
)

// nexus_endpoints: upstream's own statements, with the endpoint ids it reads put back to bytes (ids.go).

var nexusEndpointID = fromUUIDText("nexus_endpoints.id")

func endpointID(row *sqlplugin.NexusEndpointsRow) *[]byte { return &row.ID }

func (t *tables) GetNexusEndpointByID(ctx context.Context, id []byte) (*sqlplugin.NexusEndpointsRow, error) {
	row, err := t.TableCRUD.GetNexusEndpointByID(ctx, id)
	if err != nil {
		return row, err
	}
	row.ID, err = nexusEndpointID(row.ID)
	return row, err
}

func (t *tables) ListNexusEndpoints(ctx context.Context, request *sqlplugin.ListNexusEndpointsRequest) ([]sqlplugin.NexusEndpointsRow, error) {
	rows, err := t.TableCRUD.ListNexusEndpoints(ctx, request)
	if err != nil {
		return nil, err
	}
	return rows, decodeIDs(rows, endpointID, nexusEndpointID)
}
