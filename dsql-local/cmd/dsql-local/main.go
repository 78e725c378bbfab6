// Command dsql-local is a local Aurora DSQL stand-in: a PostgreSQL wire-protocol proxy that holds
// clients to DSQL's rules in front of a real PostgreSQL.
//
// Secrets come from the environment, never the command line: DSQL_LOCAL_BACKEND_PASSWORD (the
// backend's), and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (the credentials
// whose IAM tokens it accepts).
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/temporal-dsql-deploy/dsql-local/internal/admin"
	"github.com/temporal-dsql-deploy/dsql-local/internal/backend"
	"github.com/temporal-dsql-deploy/dsql-local/internal/dialect"
	"github.com/temporal-dsql-deploy/dsql-local/internal/latency"
	"github.com/temporal-dsql-deploy/dsql-local/internal/proxy"
	"github.com/temporal-dsql-deploy/dsql-local/internal/tlsca"
	"github.com/temporal-dsql-deploy/dsql-local/internal/token"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dsql-local:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:5432", "address clients connect to")
	adminListen := flag.String("admin-listen", "127.0.0.1:5434", "address of the HTTP health and fault-injection endpoint")
	endpoint := flag.String("endpoint", "127.0.0.1", "host name clients use: IAM tokens must be made for it and the certificate covers it")
	region := flag.String("region", "us-east-1", "AWS Region IAM tokens must be signed for")
	tlsDir := flag.String("tls-dir", "", "directory of the local CA (created once, kept) and its ca.pem for clients")
	publishCA := flag.String("publish-ca", "", "directory to copy ca.pem into for clients, without the CA's key (optional)")
	backendHost := flag.String("backend-host", "127.0.0.1", "backend PostgreSQL host")
	backendPort := flag.Int("backend-port", 5433, "backend PostgreSQL port")
	backendUser := flag.String("backend-user", "dsql_local_admin", "backend PostgreSQL role: admin's sessions run as it; not a superuser (CREATEROLE, owner of the backend database), not named like a schema of it")
	principal := flag.String("iam-principal", "arn:aws:iam::000000000000:role/dsql-local", "ARN of the IAM principal whose credentials sign the accepted tokens; AWS IAM GRANT role TO this ARN lets DbConnect tokens in as that role")
	backendDatabase := flag.String("backend-database", "dsql", "backend database that holds DSQL's one database, postgres")
	maxConnections := flag.Int("max-connections", 10000, "connections at once per endpoint (DSQL: 10,000 per cluster)")
	connectRate := flag.Float64("connect-rate", 100, "new connections per second per endpoint (DSQL: 100)")
	connectBurst := flag.Int("connect-burst", 1000, "burst of new connections (DSQL: 1,000)")
	maxLifetime := flag.Duration("max-lifetime", time.Hour, "connections are closed after this long (DSQL: 60 minutes)")
	maxTxnAge := flag.Duration("max-transaction-age", 300*time.Second, "transactions older than this fail (DSQL quotas page: 300 s; the community emulator's record: 1,800 s)")
	lockWait := flag.Duration("lock-wait", 5*time.Millisecond, "longest a statement waits for a row another transaction holds before it is a conflict")
	latencyProfile := flag.String("latency-profile", "none", "the network and commit delays of a DSQL endpoint to add: "+strings.Join(latency.Names(), ", "))
	peerListen := flag.String("peer-listen", "", "address of a second Region's endpoint of the same peered cluster (optional): both read-write over one store")
	peerEndpoint := flag.String("peer-endpoint", "", "host name clients of the second Region use (its tokens and certificate)")
	peerRegion := flag.String("peer-region", "", "AWS Region of the second endpoint: its IAM tokens must be signed for it")
	peerLatency := flag.String("peer-latency-profile", "", "the second endpoint's latency profile (default: --latency-profile)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	regions := []regionFlags{{"", *listen, *endpoint, *region, *latencyProfile}}
	if *peerListen != "" || *peerEndpoint != "" || *peerRegion != "" {
		peer := regionFlags{"peer-", *peerListen, *peerEndpoint, *peerRegion, cmp.Or(*peerLatency, *latencyProfile)}
		if peer.listen == "" || peer.endpoint == "" || peer.region == "" {
			return errors.New("--peer-listen, --peer-endpoint and --peer-region go together: give all three for a second Region's endpoint")
		}
		if peer.region == *region {
			return fmt.Errorf("--peer-region %s is --region's: a peered cluster's endpoints are in two Regions", peer.region)
		}
		regions = append(regions, peer)
	}
	if *tlsDir == "" {
		return errors.New("--tls-dir is required: the local CA is kept there")
	}
	if !dialect.ValidARN(*principal) {
		return fmt.Errorf("--iam-principal %q is not an IAM role or user ARN: give arn:aws:iam::<12 digits>:role/<name> or :user/<name>", *principal)
	}
	// The admin API can fail every commit (/faults) and shows what runs (/stats, pprof): only the key's holder uses it.
	adminKey := []byte(os.Getenv("DSQL_LOCAL_ADMIN_KEY"))
	if len(adminKey) < minAdminKeyLength {
		return fmt.Errorf("DSQL_LOCAL_ADMIN_KEY must be set to a secret of at least %d characters: the admin API at --admin-listen requires it as a Bearer token", minAdminKeyLength)
	}
	secret, key := os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_ACCESS_KEY_ID")
	if key == "" || secret == "" {
		return errors.New("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set: IAM tokens are checked against them")
	}
	credentials := aws.Credentials{AccessKeyID: key, SecretAccessKey: secret, SessionToken: os.Getenv("AWS_SESSION_TOKEN")}
	backendPassword := os.Getenv("DSQL_LOCAL_BACKEND_PASSWORD")
	connect := fmt.Sprintf("host=%s port=%d user=%s password=%s sslmode=disable", *backendHost, *backendPort,
		backend.QuoteConnValue(*backendUser), backend.QuoteConnValue(backendPassword))
	passwords, err := backend.NewRolePasswords(backendPassword)
	if err != nil {
		return err
	}
	base := proxy.Config{
		BackendConnect: connect + " dbname=" + backend.QuoteConnValue(*backendDatabase),
		Principal:      *principal, RolePasswords: passwords,
		MaxConnections: *maxConnections, ConnectRate: *connectRate, ConnectBurst: *connectBurst,
		MaxLifetime: *maxLifetime, MaxTxnAge: *maxTxnAge, LockWait: *lockWait, Log: log,
	}
	configs := make([]proxy.Config, len(regions))
	for i, r := range regions {
		if configs[i], err = r.config(base, *tlsDir, credentials); err != nil {
			return err
		}
	}
	if *publishCA != "" {
		if err := tlsca.PublishCA(*tlsDir, *publishCA); err != nil {
			return fmt.Errorf("--publish-ca %s: %w", *publishCA, err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	catalog, err := backend.Open(ctx, connect, *backendDatabase)
	if err != nil {
		return err
	}
	defer catalog.Close()
	cluster := proxy.NewCluster(catalog, log)
	servers := make([]*proxy.Server, len(configs))
	listeners := make([]net.Listener, len(configs))
	for i, config := range configs {
		config.Catalog, config.Cluster = catalog, cluster
		servers[i] = proxy.New(config)
		if listeners[i], err = net.Listen("tcp", regions[i].listen); err != nil {
			return err
		}
	}
	adminServer := admin.NewServer(*adminListen, admin.RequireKey(admin.Handler(servers, catalog), adminKey))
	go func() {
		if err := adminServer.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin endpoint stopped", "error", err)
			stop()
		}
	}()
	defer adminServer.Close()
	serving := make(chan error, len(servers))
	for i, server := range servers {
		log.Info("dsql-local listening", "listen", regions[i].listen, "endpoint", regions[i].endpoint, "region", regions[i].region,
			"latency", configs[i].Latency.Name, "admin", *adminListen, "ca", *tlsDir+"/"+tlsca.CAFile)
		go func() { serving <- server.Serve(ctx, listeners[i]) }()
	}
	var first error
	for range servers {
		if err := <-serving; err != nil && first == nil {
			first = err
			stop() // one endpoint failing ends the others: the supervisor restarts the stand-in whole
		}
	}
	return first
}

// regionFlags are one Region's endpoint as the command line gives it; prefix names its flags in errors.
type regionFlags struct {
	prefix, listen, endpoint, region, latency string
}

func (r regionFlags) config(base proxy.Config, tlsDir string, credentials aws.Credentials) (proxy.Config, error) {
	profile, err := latency.Named(r.latency)
	if err != nil {
		return base, fmt.Errorf("--%slatency-profile: %w", r.prefix, err)
	}
	tlsConfig, err := tlsca.ServerConfig(tlsDir, unique([]string{r.endpoint, "127.0.0.1", "localhost"}))
	if err != nil {
		return base, fmt.Errorf("local CA in %s: %w", tlsDir, err)
	}
	base.TLS, base.Latency = tlsConfig, profile
	base.Tokens = &token.Verifier{Host: r.endpoint, Region: r.region, Now: time.Now, Credentials: credentials}
	return base, nil
}

// minAdminKeyLength refuses keys short enough to guess; the stack makes 43-character ones.
const minAdminKeyLength = 16

func unique(values []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, value := range values {
		if !seen[value] {
			seen[value] = true
			out = append(out, value)
		}
	}
	return out
}
