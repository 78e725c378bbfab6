// Command temporal-server is upstream Temporal's server with the `dsql` persistence plugin registered:
// the same command-line surface (--config-file, or --root/--config/--env; `start --service ...`), the
// same config loader and temporal.NewServer, so upgrading Temporal is a version bump in go.mod.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/headers"
	"go.temporal.io/server/common/log"
	_ "go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql" // upstream's plugins stay selectable
	"go.temporal.io/server/temporal"

	_ "github.com/temporal-dsql-deploy/server/internal/dsql" // registers the dsql plugin
)

func main() {
	if err := app().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "temporal-server:", err)
		os.Exit(1)
	}
}

func app() *cli.App {
	return &cli.App{
		Name:    "temporal-server",
		Usage:   "Temporal server with the dsql persistence plugin",
		Version: headers.ServerVersion,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Aliases: []string{"r"}, Value: ".", Usage: "root directory of the configuration"},
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: "config", Usage: "config directory, relative to --root"},
			&cli.StringFlag{Name: "env", Aliases: []string{"e"}, Value: "development", Usage: "environment: the config file <env>.yaml"},
			&cli.StringFlag{Name: "zone", Aliases: []string{"az"}, Usage: "availability zone: also reads <env>_<zone>.yaml"},
			&cli.StringFlag{Name: "config-file", Usage: "one config file (absolute or relative to the working directory)"},
			&cli.BoolFlag{Name: "allow-no-auth", Usage: "start without an authorizer"},
		},
		Commands: []*cli.Command{
			{
				Name:      "validate-dynamic-config",
				Usage:     "check dynamic config files against the keys and types the server knows",
				ArgsUsage: "<file> ...",
				Action:    validateDynamicConfig,
			},
			{
				Name:  "start",
				Usage: "start Temporal services",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "service", Aliases: []string{"svc"}, Value: cli.NewStringSlice(temporal.DefaultServices...),
						Usage: "service(s) to start: " + strings.Join(temporal.DefaultServices, ", ")},
				},
				Action: start,
			},
		},
	}
}

func loadConfig(c *cli.Context) (*config.Config, error) {
	if file := c.String("config-file"); file != "" {
		return config.Load(config.WithConfigFile(file))
	}
	return config.Load(config.WithEnv(c.String("env")), config.WithConfigDir(filepath.Join(c.String("root"), c.String("config"))),
		config.WithZone(c.String("zone")))
}

func start(c *cli.Context) error {
	services := c.StringSlice("service")
	cfg, err := loadConfig(c)
	if err != nil {
		return cli.Exit(fmt.Sprintf("cannot load the configuration: %v", err), 1)
	}
	logger := log.NewZapLogger(log.BuildZapLogger(cfg.Log))
	logger.Info("starting Temporal with the dsql plugin")
	authorizer, err := authorization.GetAuthorizerFromConfig(&cfg.Global.Authorization)
	if err != nil {
		return cli.Exit(fmt.Sprintf("cannot build the authorizer: %v", err), 1)
	}
	if cfg.Global.Authorization.Authorizer == "" && !c.Bool("allow-no-auth") {
		return cli.Exit("no authorizer is configured: set global.authorization or pass --allow-no-auth", 1)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&cfg.Global.Authorization, logger)
	if err != nil {
		return cli.Exit(fmt.Sprintf("cannot build the claim mapper: %v", err), 1)
	}
	server, err := temporal.NewServer(
		temporal.ForServices(services),
		temporal.WithConfig(cfg),
		temporal.WithLogger(logger),
		temporal.InterruptOn(temporal.InterruptCh()),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(nil),
	)
	if err != nil {
		return cli.Exit(fmt.Sprintf("cannot create the server: %v", err), 1)
	}
	if err := server.Start(); err != nil {
		return cli.Exit(fmt.Sprintf("the server failed: %v", err), 1)
	}
	return nil
}

func validateDynamicConfig(c *cli.Context) error {
	failed := false
	for _, name := range c.Args().Slice() {
		contents, err := os.ReadFile(name)
		if err != nil {
			return cli.Exit(err.Error(), 1)
		}
		result := dynamicconfig.LoadYamlFile(contents)
		for _, problem := range result.Errors {
			fmt.Printf("%s: error: %v\n", name, problem)
			failed = true
		}
		for _, warning := range result.Warnings {
			fmt.Printf("%s: warning: %v\n", name, warning)
		}
	}
	if failed {
		return cli.Exit("invalid dynamic config", 1)
	}
	return nil
}
