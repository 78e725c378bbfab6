// Package dsql is the `dsql` persistence plugin: upstream's PostgreSQL plugin (postgres12_pgx) for
// everything DSQL runs as it is, reached through connections made the DSQL way, with DSQL's own SQL only
// where upstream's is refused.
package dsql

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	dsqlauth "github.com/aws/aws-sdk-go-v2/feature/dsql/auth"
	"github.com/iancoleman/strcase"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/metrics"
	"golang.org/x/time/rate"
)

const (
	// DSQL closes a connection at 60 minutes; recycle well before, spread so pools do not renew in step.
	maxLifetime     = 55 * time.Minute
	lifetimeJitter  = 0.2
	tokenLifetime   = 15 * time.Minute   // unless TEMPORAL_SQL_TOKEN_LIFETIME says otherwise
	maxTokenLife    = 7 * 24 * time.Hour // DSQL's longest
	connectRate     = 50                 // new connections per second per process, under DSQL's 100/s per cluster
	connectBurst    = 50
	defaultDSQLPort = 5432
)

// adminRole is the role DSQL makes in every cluster; only it connects with DbConnectAdmin tokens.
const adminRole = "admin"

// TokenFunc makes an IAM auth token for one new connection as user.
type TokenFunc func(ctx context.Context, host, region, user string) (string, error)

// tokenLifetimeFrom is TEMPORAL_SQL_TOKEN_LIFETIME (a Go duration), else 15 minutes. A token has only to be
// valid when a connection opens; a short one limits what a leaked token is worth.
func tokenLifetimeFrom(getenv func(string) string) (time.Duration, error) {
	text := getenv("TEMPORAL_SQL_TOKEN_LIFETIME")
	if text == "" {
		return tokenLifetime, nil
	}
	lifetime, err := time.ParseDuration(text)
	if err != nil || lifetime < time.Second || lifetime > maxTokenLife {
		return 0, fmt.Errorf("TEMPORAL_SQL_TOKEN_LIFETIME=%q: give a Go duration from 1s to 168h, e.g. 15m", text)
	}
	return lifetime, nil
}

// awsTokens signs tokens with the AWS SDK's default credentials (environment, profile, role): DbConnectAdmin
// for admin, DbConnect for any other role, which is then limited to what it was granted in the database.
func awsTokens(ctx context.Context) (TokenFunc, error) {
	lifetime, err := tokenLifetimeFrom(os.Getenv)
	if err != nil {
		return nil, err
	}
	loaded, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading AWS credentials for DSQL tokens: %w", err)
	}
	provider := loaded.Credentials
	return func(ctx context.Context, host, region, user string) (string, error) {
		withLifetime := func(o *dsqlauth.TokenOptions) { o.ExpiresIn = lifetime }
		if user == adminRole {
			return dsqlauth.GenerateDBConnectAdminAuthToken(ctx, host, region, provider, withLifetime)
		}
		return dsqlauth.GenerateDbConnectAuthToken(ctx, host, region, provider, withLifetime)
	}, nil
}

// connector opens pools of DSQL connections: verify-full TLS, a fresh IAM token for every physical
// connection (never logged), a cap on how fast new ones are made, and lifetimes under DSQL's hour.
type connector struct {
	tokens  TokenFunc
	limiter *rate.Limiter
	region  string
	metrics metrics.Handler
	pools   *poolReporter
}

func newConnector(tokens TokenFunc, region string, handler metrics.Handler) *connector {
	return &connector{tokens: tokens, limiter: rate.NewLimiter(connectRate, connectBurst), region: region,
		metrics: handler, pools: newPoolReporter(handler)}
}

// beforeConnect waits its turn under the connection rate, then signs a token for the new connection.
func (c *connector) beforeConnect(ctx context.Context, connConfig *pgx.ConnConfig, host, region string) error {
	if c.limiter.Tokens() < 1 {
		record(c.metrics, rateLimitedMetric)
	}
	if err := c.limiter.Wait(ctx); err != nil {
		return err
	}
	started := time.Now()
	token, err := c.tokens(ctx, host, region, connConfig.User)
	recordLatency(c.metrics, tokenLatencyMetric, started)
	if err != nil {
		record(c.metrics, tokenMintsMetric, metrics.OutcomeTag("failed"))
		return fmt.Errorf("making a DSQL IAM token: %w", err)
	}
	record(c.metrics, tokenMintsMetric, metrics.OutcomeTag("ok"))
	connConfig.Password = token
	return nil
}

// regionFor is AWS_REGION, else the Region in a DSQL endpoint's name (<id>.dsql.<region>.on.aws).
func regionFor(host string) string {
	if region := os.Getenv("AWS_REGION"); region != "" {
		return region
	}
	parts := strings.Split(host, ".")
	if len(parts) == 5 && parts[1] == "dsql" && parts[3] == "on" && parts[4] == "aws" {
		return parts[2]
	}
	return ""
}

// tlsConfig is verify-full: the endpoint's certificate must chain to the configured CA (or the system's
// roots, which hold Amazon Root CA 1) and name the host.
func tlsConfig(cfg *config.SQL, host string) (*tls.Config, error) {
	tlsCfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if cfg.TLS != nil && cfg.TLS.ServerName != "" {
		tlsCfg.ServerName = cfg.TLS.ServerName
	}
	if cfg.TLS != nil && cfg.TLS.CaFile != "" {
		pem, err := os.ReadFile(cfg.TLS.CaFile)
		if err != nil {
			return nil, fmt.Errorf("reading the DSQL CA file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", cfg.TLS.CaFile)
		}
		tlsCfg.RootCAs = roots
	}
	return tlsCfg, nil
}

// open is the config.SQL Connect hook: the pool upstream's plugin runs its SQL on.
func (c *connector) open(cfg *config.SQL) (*sqlx.DB, error) {
	host, portText, err := net.SplitHostPort(cfg.ConnectAddr)
	if err != nil {
		host, portText = cfg.ConnectAddr, strconv.Itoa(defaultDSQLPort)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("connectAddr %q: bad port", cfg.ConnectAddr)
	}
	region := c.region
	if region == "" {
		region = regionFor(host)
	}
	if region == "" {
		return nil, errors.New("the dsql plugin needs AWS_REGION (or a <id>.dsql.<region>.on.aws endpoint) to sign tokens")
	}
	pgxConfig, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	pgxConfig.Host, pgxConfig.Port, pgxConfig.User, pgxConfig.Database = host, uint16(port), cfg.User, cfg.DatabaseName
	if pgxConfig.TLSConfig, err = tlsConfig(cfg, host); err != nil {
		return nil, err
	}
	pgxConfig.Fallbacks = nil
	pgxConfig.ConnectTimeout = 30 * time.Second
	pgxConfig.RuntimeParams["application_name"] = "temporal"
	connector := stdlib.GetConnector(*pgxConfig,
		stdlib.OptionBeforeConnect(func(ctx context.Context, connConfig *pgx.ConnConfig) error {
			return c.beforeConnect(ctx, connConfig, host, region)
		}),
		stdlib.OptionAfterConnect(durationsAsBigint))
	replaying := newReplayingConnector(connector, c.metrics)
	pool := sql.OpenDB(replaying)
	c.pools.add(pool)
	replaying.onClose = func() { c.pools.remove(pool) }
	db := sqlx.NewDb(pool, "pgx")
	db.SetMaxOpenConns(max(cfg.MaxConns, 1))
	db.SetMaxIdleConns(cfg.MaxIdleConns)
	db.SetConnMaxLifetime(jittered(cfg.MaxConnLifetime))
	// Upstream's queries scan into structs by snake_case column names, without db tags.
	db.MapperFunc(strcase.ToSnake)
	if err := db.Ping(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// jittered keeps a pool's connection lifetime under DSQL's hour, shortened by up to 20% at random.
func jittered(configured time.Duration) time.Duration {
	lifetime := configured
	if lifetime <= 0 || lifetime > maxLifetime {
		lifetime = maxLifetime
	}
	return time.Duration(float64(lifetime) * (1 - lifetimeJitter*rand.Float64()))
}

// durationsAsBigint: Temporal stores durations as bigint nanoseconds, so pgx must encode
// time.Duration as int8 rather than as an interval.
func durationsAsBigint(_ context.Context, conn *pgx.Conn) error {
	conn.TypeMap().RegisterDefaultPgType(time.Duration(0), "int8")
	conn.TypeMap().RegisterDefaultPgType((*time.Duration)(nil), "int8")
	return nil
}
