// Package proxy is the stand-in's wire-protocol front: DSQL's connection rules (TLS, IAM tokens, the
// connection rate and lifetime), then one relay per client to its own backend PostgreSQL connection.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"golang.org/x/time/rate"

	"github.com/temporal-dsql-deploy/dsql-local/internal/backend"
	"github.com/temporal-dsql-deploy/dsql-local/internal/dialect"
	"github.com/temporal-dsql-deploy/dsql-local/internal/latency"
	"github.com/temporal-dsql-deploy/dsql-local/internal/sqlerr"
	"github.com/temporal-dsql-deploy/dsql-local/internal/token"
)

// The one database and the admin role a DSQL cluster has.
const (
	Database      = "postgres"
	AdminUser     = "admin"
	maxMessageLen = 16 << 20 // DSQL rows are at most 2 MiB; anything far larger is refused
	// Before the token is checked a client may send only the SSL request (8 bytes), the startup message
	// and the password message. pgproto3 already holds the startup message to PostgreSQL's own
	// MAX_STARTUP_PACKET_LENGTH, 10,000 bytes; the password is held to the same. The password is the IAM
	// token, a presigned URL of about 600 bytes with long-term keys, plus the URL-escaped session token
	// (commonly 1-3 KB, AWS fixes no maximum) with temporary credentials: 10,000 is 3x that, where the
	// 16 MiB allowance would let every unauthenticated connection make the stand-in buffer 16 MiB.
	preAuthMessageLen = 10_000
	handshakeTime     = 15 * time.Second
	refusalWriteTime  = 5 * time.Second
	// Connections between accept and a checked token, at once. Spending the connection-rate budget only
	// on good tokens leaves bad ones unpriced; this bounds what they can take instead (a counter, no
	// work): past it a connection is refused at once, before TLS, with 53300. With handshakeTime, it
	// bounds the TLS and SigV4 work of a flood to 256 handshakes in flight; Temporal's pools open far
	// fewer at once.
	maxAuthenticating = 256
)

// Config is everything the stand-in is told at start.
type Config struct {
	TLS            *tls.Config
	Tokens         *token.Verifier
	Catalog        *backend.Catalog
	BackendConnect string // keyword/value connection string of the backend (password included)
	// The ARN of the IAM principal whose credentials sign the tokens the stand-in accepts (Tokens): DbConnect
	// tokens are let in for the custom roles mapped to it with AWS IAM GRANT.
	Principal      string
	RolePasswords  backend.RolePasswords // the backend passwords of mapped custom roles
	MaxConnections int
	ConnectRate    float64
	ConnectBurst   int
	MaxLifetime    time.Duration
	MaxTxnAge      time.Duration
	LockWait       time.Duration
	Latency        latency.Profile // the endpoint's delays; the admin API can change them
	Log            *slog.Logger
	// Cluster is the store this endpoint serves, shared with the other Region's endpoint of a peered cluster;
	// nil: a cluster of its own.
	Cluster *Cluster
}

// Cluster is what the endpoints of one cluster share: its store (one strongly consistent database behind
// every Region's endpoint), the schema's epochs, the index jobs and the injected conflicts.
type Cluster struct {
	Faults *Faults
	Schema *SchemaEpochs
	Jobs   *Jobs
}

// NewCluster is a cluster over catalog's database, with no schema change yet and no injection.
func NewCluster(catalog *backend.Catalog, log *slog.Logger) *Cluster {
	return &Cluster{Faults: NewFaults(), Schema: NewSchemaEpochs(), Jobs: NewJobs(catalog, log)}
}

// Server is one Region's endpoint of a cluster: it accepts clients and runs their sessions.
type Server struct {
	*Cluster
	config  Config
	limiter *rate.Limiter
	active  atomic.Int64
	// Connections not yet authenticated, and how many may be at once (maxAuthenticating).
	authenticating      atomic.Int64
	authenticatingLimit int64
	// Counted since start: connections let in (a valid token each) and refused at authentication.
	authenticated, refused atomic.Int64
	Latency                *latency.Model
	tripsByKind            [len(dialect.KindNames)]atomic.Int64 // round trips by the kind of each batch's last statement
	// Set while this endpoint's Region has lost its peer and the witness: its commits that write fail, counted.
	isolated      atomic.Bool
	refusedWrites atomic.Int64
	wg            sync.WaitGroup
}

// New builds a server for config.
func New(config Config) *Server {
	cluster := config.Cluster
	if cluster == nil {
		cluster = NewCluster(config.Catalog, config.Log)
	}
	return &Server{
		Cluster: cluster,
		config:  config,
		limiter: rate.NewLimiter(rate.Limit(config.ConnectRate), config.ConnectBurst),
		Latency: latency.NewModel(config.Latency),
		// A field, so that tests can make it small.
		authenticatingLimit: maxAuthenticating,
	}
}

// Region is the AWS Region this endpoint serves (its tokens are signed for it).
func (s *Server) Region() string { return s.config.Tokens.Region }

// SetIsolated cuts this endpoint's Region off from its peer and the witness (true), or reconnects it.
func (s *Server) SetIsolated(isolated bool) { s.isolated.Store(isolated) }

// Isolated reports whether this endpoint's Region is cut off.
func (s *Server) Isolated() bool { return s.isolated.Load() }

// RefusedWrites is how many writing commits this endpoint refused while its Region was cut off, since start.
func (s *Server) RefusedWrites() int64 { return s.refusedWrites.Load() }

// isolationRefusal is the error for a writing commit while the Region is cut off (nil when it is not), counted.
func (s *Server) isolationRefusal() *sqlerr.Error {
	if !s.isolated.Load() {
		return nil
	}
	s.refusedWrites.Add(1)
	return sqlerr.RegionIsolated(s.Region())
}

// RoundTripsByKind counts the round trips since start by the kind of the statement that ended each (its batch's
// last): how many were BEGINs, COMMITs, reads and writes.
func (s *Server) RoundTripsByKind() map[string]int64 {
	counts := make(map[string]int64, len(dialect.KindNames))
	for kind, name := range dialect.KindNames {
		counts[name] = s.tripsByKind[kind].Load()
	}
	return counts
}

// ActiveConnections is how many clients are connected now.
func (s *Server) ActiveConnections() int64 { return s.active.Load() }

// Authentications is how many connections were let in and refused at authentication since start.
func (s *Server) Authentications() (accepted, refused int64) {
	return s.authenticated.Load(), s.refused.Load()
}

// Serve accepts connections on listener until ctx ends.
func (s *Server) Serve(ctx context.Context, listener net.Listener) error {
	go func() { <-ctx.Done(); listener.Close() }()
	for {
		conn, err := listener.Accept()
		if err != nil {
			if ctx.Err() != nil {
				s.wg.Wait()
				return nil
			}
			var temporary interface{ Temporary() bool }
			if errors.As(err, &temporary) && temporary.Temporary() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		// The place is taken here, in accept order, so a connection accepted later never overtakes one
		// accepted earlier.
		admitted := s.authenticating.Add(1) <= s.authenticatingLimit
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			if !admitted {
				s.authenticating.Add(-1)
				refuseConnection(conn, sqlerr.New(sqlerr.TooManyConnections, "authenticating",
					"sorry, too many connections are authenticating (%d at once)", s.authenticatingLimit))
				return
			}
			s.handle(ctx, conn)
		}()
	}
}

// refuseConnection answers err and gives up after refusalWriteTime, so a client that does not read cannot hold
// the goroutine.
func refuseConnection(conn net.Conn, err *sqlerr.Error) {
	_ = conn.SetWriteDeadline(time.Now().Add(refusalWriteTime))
	backend := pgproto3.NewBackend(conn, conn)
	backend.Send(err.Response(true))
	_ = backend.Flush()
}

// handle serves one admitted connection; Serve has already counted it among the authenticating ones.
func (s *Server) handle(ctx context.Context, raw net.Conn) {
	authenticating := true
	doneAuthenticating := func() {
		if authenticating {
			authenticating = false
			s.authenticating.Add(-1)
		}
	}
	defer doneAuthenticating()
	if s.active.Add(1) > int64(s.config.MaxConnections) {
		s.active.Add(-1)
		refuseConnection(raw, sqlerr.New(sqlerr.TooManyConnections, "max_connections", "sorry, too many clients already"))
		return
	}
	defer s.active.Add(-1)
	_ = raw.SetDeadline(time.Now().Add(handshakeTime))
	conn, client, startup, err := s.negotiate(raw)
	if err != nil || startup == nil {
		return // a cancel request, or a client that went away: nothing to log for it
	}
	user, database := startup.Parameters["user"], startup.Parameters["database"]
	if refusal := s.authenticate(ctx, client, user, database); refusal != nil {
		s.refused.Add(1)
		s.config.Log.Info("connection refused", "rule", refusal.Rule, "user", user, "remote", raw.RemoteAddr().String())
		client.Send(refusal.Response(true))
		_ = client.Flush()
		return
	}
	// The shared budget is spent only by a connection with a good token, so a flood of bad ones cannot
	// use up what Temporal's connections need (DSQL's quota counts connections to the cluster).
	if !s.limiter.Allow() {
		s.config.Log.Info("connection refused", "rule", "connection_rate", "user", user, "remote", raw.RemoteAddr().String())
		client.Send(sqlerr.New(sqlerr.ConnectionRate, "connection_rate",
			"unable to accept connection, rate exceeded (%g new connections per second, burst %d)", s.config.ConnectRate, s.config.ConnectBurst).Response(true))
		_ = client.Flush()
		return
	}
	s.authenticated.Add(1)
	doneAuthenticating()
	client.SetMaxBodyLen(maxMessageLen) // authenticated: the normal allowance from here on
	upstream, err := s.connectBackend(ctx, startup.Parameters["application_name"], user)
	if err != nil {
		s.config.Log.Error("backend connection failed", "error", err)
		client.Send(sqlerr.New("08006", "backend", "the database is not available: %v", err).Response(true))
		_ = client.Flush()
		return
	}
	defer upstream.Conn.Close()
	_ = raw.SetDeadline(time.Time{})
	client.Send(&pgproto3.AuthenticationOk{})
	for name, value := range upstream.ParameterStatuses {
		if name == "session_authorization" {
			value = user
		}
		client.Send(&pgproto3.ParameterStatus{Name: name, Value: value})
	}
	client.Send(&pgproto3.BackendKeyData{ProcessID: upstream.PID, SecretKey: upstream.SecretKey})
	client.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := client.Flush(); err != nil {
		return
	}
	end := func() { conn.Close(); upstream.Conn.Close() } // the backend rolls back what was open, as DSQL does
	lifetime := time.AfterFunc(s.config.MaxLifetime, end)
	defer lifetime.Stop()
	// A stop ends the session too: a client's pool need never let go of its connection (Temporal's does not).
	stopping := context.AfterFunc(ctx, end)
	defer stopping()
	newSession(s, conn, client, upstream, user).run()
}

// negotiate insists on TLS and returns the client's startup message (nil for a cancel request).
func (s *Server) negotiate(raw net.Conn) (net.Conn, *pgproto3.Backend, *pgproto3.StartupMessage, error) {
	conn := net.Conn(raw)
	client := pgproto3.NewBackend(conn, conn)
	secured := false
	for {
		message, err := client.ReceiveStartupMessage()
		if err != nil {
			return nil, nil, nil, err
		}
		switch m := message.(type) {
		case *pgproto3.SSLRequest:
			if secured {
				return nil, nil, nil, errors.New("second SSL request")
			}
			if _, err := conn.Write([]byte{'S'}); err != nil {
				return nil, nil, nil, err
			}
			secure := tls.Server(conn, s.config.TLS)
			if err := secure.Handshake(); err != nil {
				return nil, nil, nil, err
			}
			conn, secured = secure, true
			client = pgproto3.NewBackend(conn, conn)
		case *pgproto3.GSSEncRequest:
			if _, err := conn.Write([]byte{'N'}); err != nil {
				return nil, nil, nil, err
			}
		case *pgproto3.CancelRequest:
			s.forwardCancel(m)
			return nil, nil, nil, nil
		case *pgproto3.StartupMessage:
			if !secured {
				refused := sqlerr.New(sqlerr.InvalidAuthorization, "tls_required", "SSL/TLS is required: connect with sslmode=require or stricter")
				client.Send(refused.Response(true))
				_ = client.Flush()
				return nil, nil, nil, errors.New("plaintext startup")
			}
			client.SetMaxBodyLen(preAuthMessageLen) // until the token is checked
			return conn, client, m, nil
		default:
			return nil, nil, nil, fmt.Errorf("unexpected startup message %T", message)
		}
	}
}

// authenticate asks for the password and checks it is an IAM token for this endpoint and user: admin needs a
// DbConnectAdmin token, a custom role a DbConnect token signed by an IAM principal mapped to it.
func (s *Server) authenticate(ctx context.Context, client *pgproto3.Backend, user, database string) *sqlerr.Error {
	if database == "" {
		database = user
	}
	if database != Database {
		return sqlerr.New(sqlerr.InvalidCatalogName, "database", "database \"%s\" does not exist", database)
	}
	client.Send(&pgproto3.AuthenticationCleartextPassword{})
	if err := client.Flush(); err != nil {
		return sqlerr.New(sqlerr.ProtocolViolation, "auth", "connection closed during authentication")
	}
	if err := client.SetAuthType(pgproto3.AuthTypeCleartextPassword); err != nil {
		return sqlerr.New(sqlerr.ProtocolViolation, "auth", "authentication failed")
	}
	message, err := client.Receive()
	if tooLarge := (*pgproto3.ExceededMaxBodyLenErr)(nil); errors.As(err, &tooLarge) {
		return sqlerr.New(sqlerr.ProtocolViolation, "auth_message_size", "password message too large (%d bytes, at most %d before authentication)",
			tooLarge.ActualBodyLen, tooLarge.MaxExpectedBodyLen)
	}
	password, ok := message.(*pgproto3.PasswordMessage)
	if err != nil || !ok {
		return sqlerr.New(sqlerr.ProtocolViolation, "auth", "expected a password message")
	}
	action, err := s.config.Tokens.Verify(password.Password)
	if err != nil {
		// The reason goes to the stand-in's log; the client learns only that the token was refused.
		s.config.Log.Info("IAM token refused", "reason", err.Error())
		return sqlerr.New(sqlerr.InvalidPassword, "iam_token", "password authentication failed for user \"%s\": the IAM token is invalid or expired", user)
	}
	if (user == AdminUser) != (action == token.ActionAdmin) { // DSQL's message (troubleshooting: authentication errors)
		return sqlerr.New(sqlerr.InvalidAuthorization, "iam_action", "Wrong user to action mapping. user: %s, action: %s", user, action)
	}
	if user == AdminUser {
		return nil
	}
	lookup, cancel := context.WithTimeout(ctx, catalogWait)
	defer cancel()
	exists, mapped, err := s.config.Catalog.MappedTo(lookup, user, s.config.Principal)
	switch {
	case err != nil:
		s.config.Log.Error("reading the IAM mappings failed", "error", err)
		return sqlerr.New("08006", "backend", "the database is not available")
	case !exists:
		return sqlerr.New(sqlerr.InvalidAuthorization, "role", "role \"%s\" does not exist", user)
	case !mapped:
		return sqlerr.New(sqlerr.InvalidAuthorization, "iam_mapping", "IAM authentication failed for user \"%s\": the IAM identity that signed the token is not granted this role (AWS IAM GRANT)", user)
	}
	return nil
}

// connectBackend opens the session's backend connection: admin's as the backend role, a custom role's as
// that role itself, so PostgreSQL enforces its privileges (no SET ROLE a client could undo).
func (s *Server) connectBackend(ctx context.Context, application, user string) (*pgconn.HijackedConn, error) {
	config, err := pgconn.ParseConfig(s.config.BackendConnect)
	if err != nil {
		return nil, err
	}
	connectCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if user != AdminUser {
		config.User, config.Password = user, s.config.RolePasswords.For(user)
	}
	config.RuntimeParams["default_transaction_isolation"] = "repeatable read"
	config.RuntimeParams["lock_timeout"] = fmt.Sprintf("%dms", s.config.LockWait.Milliseconds())
	config.RuntimeParams["timezone"] = "UTC"
	if application != "" {
		config.RuntimeParams["application_name"] = application
	}
	conn, err := pgconn.ConnectConfig(connectCtx, config)
	var refused *pgconn.PgError
	if user != AdminUser && errors.As(err, &refused) && refused.Code == "28P01" { // the role has no password yet
		if err := s.config.Catalog.SetLoginPassword(connectCtx, user, config.Password); err != nil {
			return nil, fmt.Errorf("setting the backend password of role %s: %w", user, err)
		}
		conn, err = pgconn.ConnectConfig(connectCtx, config)
	}
	if err != nil {
		return nil, err
	}
	return conn.Hijack()
}

func (s *Server) forwardCancel(request *pgproto3.CancelRequest) {
	config, err := pgconn.ParseConfig(s.config.BackendConnect)
	if err != nil {
		return
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(config.Host, fmt.Sprint(config.Port)), 5*time.Second)
	if err != nil {
		return
	}
	defer conn.Close()
	encoded, err := request.Encode(nil)
	if err == nil {
		_, _ = conn.Write(encoded)
		_, _ = io.Copy(io.Discard, conn)
	}
}

// Faults injects DSQL conflicts into a fraction of commits, deterministically for a given seed.
type Faults struct {
	mu     sync.Mutex
	rate   float64
	seed   int64
	random *rand.Rand
	fired  int64
}

// NewFaults starts with no injection.
func NewFaults() *Faults { return &Faults{random: rand.New(rand.NewSource(1)), seed: 1} }

// Set changes the conflict rate (0 to 1) and reseeds.
func (f *Faults) Set(conflictRate float64, seed int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rate, f.seed, f.random, f.fired = conflictRate, seed, rand.New(rand.NewSource(seed)), 0
}

// State returns the rate, the seed and how many conflicts were injected since the last Set.
func (f *Faults) State() (float64, int64, int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rate, f.seed, f.fired
}

// CommitConflict draws whether this commit fails with an injected conflict.
func (f *Faults) CommitConflict() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rate <= 0 {
		return false
	}
	if f.random.Float64() < f.rate {
		f.fired++
		return true
	}
	return false
}

// SchemaEpochs numbers committed schema changes per table, for DSQL's OC001 schema conflicts.
type SchemaEpochs struct {
	mu     sync.Mutex
	now    uint64
	tables map[string]uint64
}

// NewSchemaEpochs starts at epoch 0 with no changes.
func NewSchemaEpochs() *SchemaEpochs { return &SchemaEpochs{tables: map[string]uint64{}} }

// Now is the current epoch (a transaction notes it when it starts).
func (e *SchemaEpochs) Now() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

// Changed records a committed schema change of tables.
func (e *SchemaEpochs) Changed(tables []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now++
	for _, table := range tables {
		e.tables[table] = e.now
	}
}

// ChangedSince reports whether any of tables changed after epoch.
func (e *SchemaEpochs) ChangedSince(epoch uint64, tables []string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, table := range tables {
		if e.tables[table] > epoch {
			return true
		}
	}
	return false
}
