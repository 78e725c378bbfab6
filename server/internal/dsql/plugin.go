package dsql

import (
	"context"
	"fmt"

	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/metrics"
	"go.temporal.io/server/common/persistence/sql"
	"go.temporal.io/server/common/persistence/sql/sqlplugin"
	"go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql"
	"go.temporal.io/server/common/resolver"
)

// PluginName is what `persistence.datastores.<name>.sql.pluginName` selects.
const PluginName = "dsql"

func init() {
	sql.RegisterPlugin(PluginName, &plugin{newTokens: awsTokens})
}

type plugin struct {
	newTokens func(context.Context) (TokenFunc, error)
}

var _ sqlplugin.Plugin = (*plugin)(nil)

// CreateDB builds upstream's PostgreSQL database layer over DSQL connections.
func (p *plugin) CreateDB(
	dbKind sqlplugin.DbKind,
	cfg *config.SQL,
	r resolver.ServiceResolver,
	logger log.Logger,
	metricsHandler metrics.Handler,
) (sqlplugin.GenericDB, error) {
	tokens, err := p.newTokens(context.Background())
	if err != nil {
		return nil, err
	}
	onDSQL := *cfg
	onDSQL.PluginName = postgresql.PluginNamePGX
	tagged := metricsHandler.WithTags(metrics.PersistenceDBKindTag(dbKind.String()))
	onDSQL.Connect = newConnector(tokens, "", tagged).open
	db, err := sql.NewSQLAdminDB(dbKind, &onDSQL, r, logger, metricsHandler)
	if err != nil {
		return nil, fmt.Errorf("dsql plugin: %w", err)
	}
	return newDatabase(db, tagged)
}

// GetVisibilityQueryConverter: visibility lives in Elasticsearch/OpenSearch on DSQL deployments
// (DSQL cannot hold Temporal's SQL visibility schema), so the plugin has none.
func (p *plugin) GetVisibilityQueryConverter() sqlplugin.VisibilityQueryConverter { return nil }
