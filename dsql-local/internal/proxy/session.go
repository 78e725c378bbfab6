package proxy

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/temporal-dsql-deploy/dsql-local/internal/backend"
	"github.com/temporal-dsql-deploy/dsql-local/internal/dialect"
	"github.com/temporal-dsql-deploy/dsql-local/internal/sqlerr"
)

// A refusal reaches the client in protocol order by sending the backend a statement that fails to
// parse with a unique marker; the backend's syntax error is then replaced by DSQL's error. The
// backend itself thus enters the error state the client expects (skip to Sync, abort the transaction).
const (
	markerPrefix    = "DSQL_LOCAL_REFUSAL_"
	refusalStmtName = "dsql_local_refusal"
)

type prepared struct {
	statements []dialect.Statement
	classified bool
	jobID      string // CREATE INDEX ASYNC: the job this statement starts when executed
	jobDone    bool   // ... which finds its index already there (IF NOT EXISTS)
}

// transaction is what DSQL's rules need to know about the transaction in progress.
type transaction struct {
	explicit  bool
	began     time.Time
	epoch     uint64
	started   bool
	ddl       int
	data      bool // read or wrote table rows (DDL and DML may not share a transaction)
	wrote     bool // changed rows or the schema (only such a commit can conflict)
	tables    []string
	ddlTables []string
	created   []string
}

// committed is what a transaction's successful end changes: the schema epochs, the catalog, the guards.
type committed struct {
	ddlTables []string
	created   []string
}

type session struct {
	server     *Server
	clientConn net.Conn
	client     *pgproto3.Backend
	upstream   *pgconn.HijackedConn
	backend    *pgproto3.Frontend
	backendMu  sync.Mutex
	role       string // a custom role's session: the role it runs as on the backend ("" for admin's)

	// Used by the client-to-backend loop only.
	statements        map[string]*prepared
	portals           map[string]*prepared
	rollbackAfterSync bool
	committing        bool         // the batch being read commits a transaction that wrote (the latency model's commit)
	batchKind         dialect.Kind // the kind of the batch's last statement, for the round trips' count by kind

	mu                sync.Mutex // guards the fields below, shared by both loops
	txn               transaction
	pendingCommit     *committed
	refusals          map[string]*sqlerr.Error
	rewriteRollbacks  []*sqlerr.Error // CommandComplete "ROLLBACK" answers that are really a failed COMMIT
	internalRollbacks int             // ROLLBACKs the stand-in sent itself: their answers are not the client's
	markers           uint64
	batchFailed       bool
	lastTag           string

	flushes atomic.Int32
}

func newSession(server *Server, conn net.Conn, client *pgproto3.Backend, upstream *pgconn.HijackedConn, user string) *session {
	role := user
	if user == AdminUser {
		role = ""
	}
	return &session{
		server: server, clientConn: conn, client: client, upstream: upstream, backend: upstream.Frontend,
		statements: map[string]*prepared{}, portals: map[string]*prepared{}, refusals: map[string]*sqlerr.Error{},
		role: role,
	}
}

func (s *session) run() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.backendToClient()
		s.clientConn.Close()
	}()
	s.clientToBackend()
	s.upstream.Conn.Close() // the backend rolls back whatever was open
	<-done
}

func (s *session) send(messages ...pgproto3.FrontendMessage) error {
	s.backendMu.Lock()
	defer s.backendMu.Unlock()
	for _, message := range messages {
		s.backend.Send(message)
	}
	return s.backend.Flush()
}

func (s *session) queue(message pgproto3.FrontendMessage) {
	s.backendMu.Lock()
	defer s.backendMu.Unlock()
	s.backend.Send(message)
}

// --- client to backend -----------------------------------------------------------------------

func (s *session) clientToBackend() {
	for {
		message, err := s.client.Receive()
		if err != nil {
			return
		}
		switch m := message.(type) {
		case *pgproto3.Query:
			text := s.onQuery(m.String)
			s.roundTrip()
			err = s.send(&pgproto3.Query{String: text})
		case *pgproto3.Parse:
			s.queue(s.onParse(m))
		case *pgproto3.Bind:
			s.portals[m.DestinationPortal] = s.statements[m.PreparedStatement]
			s.queue(m)
		case *pgproto3.Execute:
			s.queue(s.onExecute(m))
		case *pgproto3.Close:
			if m.ObjectType == 'S' {
				delete(s.statements, m.Name)
			} else {
				delete(s.portals, m.Name)
			}
			s.queue(m)
		case *pgproto3.Sync:
			err = s.onSync(m)
		case *pgproto3.Flush:
			s.flushes.Add(1)
			err = s.send(m)
		case *pgproto3.Terminate:
			_ = s.send(m)
			return
		case *pgproto3.CopyDone, *pgproto3.CopyFail:
			err = s.send(m.(pgproto3.FrontendMessage))
		default:
			s.queue(message.(pgproto3.FrontendMessage))
		}
		if err != nil {
			return
		}
	}
}

// roundTrip holds a batch back for the endpoint's latency before the backend sees it: the client waits as long
// as it would on DSQL's network, and a transaction stays open as long.
func (s *session) roundTrip() {
	s.server.Latency.Wait(s.committing)
	s.server.tripsByKind[s.batchKind].Add(1)
	s.committing, s.batchKind = false, dialect.KindNeutral
}

func (s *session) marker(refusal *sqlerr.Error) string {
	s.markers++
	name := fmt.Sprintf("%s%d", markerPrefix, s.markers)
	s.refusals[name] = refusal
	return name
}

// startStatement opens the implicit transaction a statement outside BEGIN runs in.
func (s *session) startStatement() {
	if !s.txn.explicit && !s.txn.started {
		s.txn = transaction{epoch: s.server.Schema.Now(), began: time.Now()}
	}
}

// endImplicit closes an implicit transaction (end of a simple query, or Sync), noting what it changed.
func (s *session) endImplicit() {
	if s.txn.explicit {
		return
	}
	s.committing = s.committing || s.txn.wrote
	if s.txn.ddl > 0 {
		s.pendingCommit = &committed{ddlTables: s.txn.ddlTables, created: s.txn.created}
	}
	s.txn = transaction{}
}

// admit applies DSQL's transaction rules to a statement about to run; it returns a refusal, or for a
// COMMIT that must fail, the conflict to report in its place.
func (s *session) admit(statement dialect.Statement) (refusal, failedCommit *sqlerr.Error) {
	s.batchKind = statement.Kind
	if statement.Refusal != nil {
		return statement.Refusal, nil
	}
	if refusal := s.iamRefusal(statement); refusal != nil {
		return refusal, nil
	}
	if refusal := s.mappedRoleRefusal(statement); refusal != nil {
		return refusal, nil
	}
	t := &s.txn
	switch statement.Kind {
	case dialect.KindBegin:
		s.txn = transaction{explicit: true, began: time.Now(), epoch: s.server.Schema.Now(), started: true}
		return nil, nil
	case dialect.KindRollback:
		s.txn = transaction{}
		return nil, nil
	case dialect.KindCommit:
		if !t.explicit {
			return nil, nil
		}
		s.committing = s.committing || t.wrote
		refused := (*sqlerr.Error)(nil)
		if t.wrote {
			refused = s.server.isolationRefusal()
		}
		switch {
		case refused != nil:
			failedCommit = refused
		case t.wrote && s.server.Faults.CommitConflict():
			failedCommit = sqlerr.Conflict(false)
		case s.server.Schema.ChangedSince(t.epoch, t.tables):
			failedCommit = sqlerr.Conflict(true)
		case t.ddl > 0:
			s.pendingCommit = &committed{ddlTables: t.ddlTables, created: t.created}
		}
		s.txn = transaction{}
		return nil, failedCommit
	}
	if limit := s.server.config.MaxTxnAge; t.explicit && limit > 0 && time.Since(t.began) > limit {
		return sqlerr.New(sqlerr.ProgramLimitExceeded, "txn_age", "transaction age limit of %ds exceeded", int(limit.Seconds())), nil
	}
	t.started = true
	switch statement.Kind {
	case dialect.KindDDL:
		if t.ddl > 0 {
			return sqlerr.New(sqlerr.FeatureNotSupported, "ddl_count", "multiple ddl statements not supported in a transaction"), nil
		}
		if t.data {
			return sqlerr.New(sqlerr.FeatureNotSupported, "ddl_dml_mix", "ddl and dml are not supported in the same transaction"), nil
		}
		t.ddl++
		t.wrote = true
		t.ddlTables = append(t.ddlTables, statement.Tables...)
		if statement.Created != "" {
			t.created = append(t.created, statement.Created)
		}
	case dialect.KindDML, dialect.KindRead:
		if t.ddl > 0 {
			return sqlerr.New(sqlerr.FeatureNotSupported, "ddl_dml_mix", "ddl and dml are not supported in the same transaction"), nil
		}
		t.data = true
		t.wrote = t.wrote || statement.Kind == dialect.KindDML
	}
	t.tables = append(t.tables, statement.Tables...)
	return nil, nil
}

// failedAutocommit is, for a statement that commits on its own, why its commit fails: its Region is cut off, or
// an injected conflict drawn.
func (s *session) failedAutocommit(statement dialect.Statement) *sqlerr.Error {
	if s.txn.explicit || (statement.Kind != dialect.KindDML && statement.Kind != dialect.KindDDL) {
		return nil
	}
	if refused := s.server.isolationRefusal(); refused != nil {
		return refused
	}
	if s.server.Faults.CommitConflict() {
		return sqlerr.Conflict(false)
	}
	return nil
}

// onQuery returns the text to send the backend for a simple query.
func (s *session) onQuery(text string) string {
	statements, err := dialect.Classify(text, s.server.config.Catalog)
	if err != nil {
		return text // PostgreSQL reports the syntax error, with its position
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startStatement()
	var refusal, failedCommit *sqlerr.Error
	for _, statement := range statements {
		if statement.AsyncIndex != nil && len(statements) > 1 {
			refusal = sqlerr.New(sqlerr.FeatureNotSupported, "async_alone", "send CREATE INDEX ASYNC as a statement of its own")
		} else {
			refusal, failedCommit = s.admit(statement)
		}
		if refusal == nil && failedCommit == nil && len(statements) == 1 {
			refusal = s.failedAutocommit(statement)
		}
		if refusal != nil || failedCommit != nil {
			break
		}
	}
	if refusal == nil && failedCommit == nil && len(statements) > 1 && !s.txn.explicit && s.txn.wrote {
		refusal = s.server.isolationRefusal() // statements sent together outside BEGIN commit together, as one write
	}
	defer s.endImplicit()
	switch {
	case refusal != nil:
		return s.marker(refusal)
	case failedCommit != nil && len(statements) == 1:
		s.rewriteRollbacks = append(s.rewriteRollbacks, failedCommit)
		return "ROLLBACK"
	case failedCommit != nil:
		return s.marker(failedCommit)
	case len(statements) == 1 && statements[0].IAM != nil:
		return iamCall(statements[0].IAM)
	case len(statements) == 1 && statements[0].AsyncIndex != nil:
		done, refused := s.server.Jobs.Admit(statements[0].AsyncIndex, s.role)
		if refused != nil {
			return s.marker(refused)
		}
		id := NewID()
		s.server.Jobs.Start(id, statements[0].AsyncIndex, done)
		return fmt.Sprintf("SELECT '%s'::text AS job_id", id)
	}
	return text
}

// iamRefusal: only admin may map IAM principals to roles (DSQL's message, troubleshooting: authorization errors).
func (s *session) iamRefusal(statement dialect.Statement) *sqlerr.Error {
	if statement.IAM == nil || s.role == "" { // AWS IAM GRANT and REVOKE are admin's alone
		return nil
	}
	return sqlerr.New(sqlerr.InsufficientPrivilege, "iam_grant_admin", "permission denied to grant IAM trust with role %s", statement.IAM.Role)
}

// mappedRoleRefusal: DSQL keeps a role mapped to an IAM principal until AWS IAM REVOKE (troubleshooting:
// authorization errors, with its message).
func (s *session) mappedRoleRefusal(statement dialect.Statement) *sqlerr.Error {
	for _, role := range statement.Dropped {
		ctx, cancel := context.WithTimeout(context.Background(), catalogWait)
		mapped, err := s.server.config.Catalog.Mapped(ctx, role)
		cancel()
		if err == nil && mapped {
			return sqlerr.New(sqlerr.DependentObjectsStillExist, "drop_mapped_role",
				"role %s cannot be dropped because some objects depend on it", role)
		}
	}
	return nil
}

// iamCall is the backend statement that keeps an AWS IAM GRANT or REVOKE: a procedure of the stand-in's private
// schema, run on admin's own backend connection so that its answer (or error) comes in protocol order.
func iamCall(grant *dialect.IAMGrant) string {
	procedure := "iam_grant"
	if grant.Revoke {
		procedure = "iam_revoke"
	}
	return fmt.Sprintf("CALL dsql_local.%s(%s, %s)", procedure, backend.QuoteLiteral(grant.Role), backend.QuoteLiteral(grant.ARN))
}

func (s *session) onParse(parse *pgproto3.Parse) *pgproto3.Parse {
	statements, err := dialect.Classify(parse.Query, s.server.config.Catalog)
	entry := &prepared{statements: statements, classified: err == nil && len(statements) == 1}
	s.statements[parse.Name] = entry
	if !entry.classified {
		return parse
	}
	statement := statements[0]
	if refusal := s.iamRefusal(statement); refusal != nil && statement.Refusal == nil {
		statement.Refusal = refusal
	}
	switch {
	case statement.Refusal != nil:
		s.mu.Lock()
		defer s.mu.Unlock()
		return &pgproto3.Parse{Name: parse.Name, Query: s.marker(statement.Refusal)}
	case statement.IAM != nil:
		return &pgproto3.Parse{Name: parse.Name, Query: iamCall(statement.IAM), ParameterOIDs: parse.ParameterOIDs}
	case statement.AsyncIndex != nil:
		done, refused := s.server.Jobs.Admit(statement.AsyncIndex, s.role)
		if refused != nil {
			s.mu.Lock()
			defer s.mu.Unlock()
			return &pgproto3.Parse{Name: parse.Name, Query: s.marker(refused)}
		}
		entry.jobID, entry.jobDone = NewID(), done
		return &pgproto3.Parse{Name: parse.Name, Query: fmt.Sprintf("SELECT '%s'::text AS job_id", entry.jobID)}
	}
	return parse
}

func (s *session) onExecute(execute *pgproto3.Execute) pgproto3.FrontendMessage {
	entry := s.portals[execute.Portal]
	if entry == nil || !entry.classified {
		return execute
	}
	statement := entry.statements[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startStatement()
	refusal, failedCommit := s.admit(statement)
	if refusal == nil && failedCommit == nil {
		refusal = s.failedAutocommit(statement)
	}
	switch {
	case refusal != nil:
		return &pgproto3.Parse{Name: refusalStmtName, Query: s.marker(refusal)}
	case failedCommit != nil:
		s.rollbackAfterSync = true // the failed statement left the transaction open, aborted
		return &pgproto3.Parse{Name: refusalStmtName, Query: s.marker(failedCommit)}
	case entry.jobID != "":
		s.server.Jobs.Start(entry.jobID, statement.AsyncIndex, entry.jobDone)
	}
	return execute
}

func (s *session) onSync(sync *pgproto3.Sync) error {
	s.mu.Lock()
	s.endImplicit()
	rollback := s.rollbackAfterSync
	s.rollbackAfterSync = false
	if rollback {
		s.internalRollbacks++
	}
	s.mu.Unlock()
	s.roundTrip()
	if rollback {
		return s.send(sync, &pgproto3.Query{String: "ROLLBACK"})
	}
	return s.send(sync)
}

// --- backend to client -----------------------------------------------------------------------

func (s *session) backendToClient() {
	swallowing := false
	for {
		message, err := s.backend.Receive()
		if err != nil {
			return
		}
		_, ready := message.(*pgproto3.ReadyForQuery)
		if swallowing && !ready {
			continue // the answer to the stand-in's own ROLLBACK
		}
		var reply pgproto3.BackendMessage = message
		flush := s.flushes.Load() > 0
		switch m := message.(type) {
		case *pgproto3.ErrorResponse:
			reply = s.rewriteError(m)
		case *pgproto3.CommandComplete:
			reply = s.rewriteComplete(m)
		case *pgproto3.ReadyForQuery:
			if !swallowing && s.takeInternalRollback() {
				swallowing = true // the client's answer is the ReadyForQuery after our ROLLBACK
				continue
			}
			swallowing = false
			s.onReady(m.TxStatus)
			s.flushes.Store(0)
			flush = true
		case *pgproto3.CopyInResponse, *pgproto3.CopyOutResponse, *pgproto3.CopyBothResponse,
			*pgproto3.NotificationResponse, *pgproto3.ParameterStatus:
			flush = true
		}
		s.client.Send(reply)
		if flush {
			if err := s.client.Flush(); err != nil {
				return
			}
		}
	}
}

func (s *session) takeInternalRollback() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.internalRollbacks == 0 {
		return false
	}
	s.internalRollbacks--
	return true
}

func (s *session) rewriteError(m *pgproto3.ErrorResponse) pgproto3.BackendMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batchFailed = true
	switch m.Code {
	case "42601":
		for name, refusal := range s.refusals {
			if strings.Contains(m.Message, name) {
				delete(s.refusals, name)
				return refusal.Response(false)
			}
		}
	case "40001", "55P03", "40P01": // a serialization failure, or a lock DSQL would not have waited for
		return sqlerr.Conflict(false).Response(false)
	case sqlerr.ProgramLimitExceeded: // from the limit triggers: DSQL's message and detail, without PL/pgSQL context
		return &pgproto3.ErrorResponse{Severity: m.Severity, SeverityUnlocalized: m.SeverityUnlocalized, Code: m.Code,
			Message: m.Message, Detail: m.Detail}
	}
	return m
}

func (s *session) rewriteComplete(m *pgproto3.CommandComplete) pgproto3.BackendMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	tag := string(m.CommandTag)
	s.lastTag = tag
	if tag == "ROLLBACK" && len(s.rewriteRollbacks) > 0 {
		conflict := s.rewriteRollbacks[0]
		s.rewriteRollbacks = s.rewriteRollbacks[1:]
		s.batchFailed = true
		return conflict.Response(false)
	}
	return m
}

// onReady ends a batch: a transaction that ended well publishes its schema change before the client
// hears that it may go on.
func (s *session) onReady(status byte) {
	s.mu.Lock()
	change := s.pendingCommit
	succeeded := !s.batchFailed && s.lastTag != "ROLLBACK"
	s.pendingCommit, s.batchFailed, s.lastTag = nil, false, ""
	clear(s.refusals)
	if status == 'I' && s.txn.explicit {
		s.txn = transaction{} // the backend ended the transaction (a failed BEGIN or COMMIT)
	}
	s.mu.Unlock()
	if change == nil || !succeeded || status != 'I' {
		return
	}
	s.server.Schema.Changed(change.ddlTables)
	catalog := s.server.config.Catalog
	catalog.Invalidate()
	// A new table gets its limit triggers; a changed one (columns added, dropped, renamed) gets its trigger
	// function rewritten for its columns now.
	guarded := map[string]bool{}
	for _, table := range append(slices.Clone(change.created), change.ddlTables...) {
		if guarded[table] {
			continue
		}
		guarded[table] = true
		if err := catalog.Guard(context.Background(), table); err != nil {
			s.server.config.Log.Error("guarding a table failed", "table", table, "error", err)
		}
	}
}
