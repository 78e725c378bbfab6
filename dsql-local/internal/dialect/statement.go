// Package dialect classifies SQL on PostgreSQL's own parse tree (pg_query_go) and refuses what Aurora
// DSQL refuses, with DSQL's SQLSTATE and message. Nothing here matches SQL text with patterns: the
// one DSQL-only keyword (`ASYNC` in `CREATE INDEX ASYNC`) is found with PostgreSQL's own scanner.
package dialect

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/temporal-dsql-deploy/dsql-local/internal/sqlerr"
)

// Kind is what a statement does to a transaction.
type Kind int

const (
	KindNeutral Kind = iota // touches no table: SELECT 1, SHOW, SET
	KindRead                // reads tables
	KindDML                 // writes rows
	KindDDL                 // changes the schema
	KindBegin
	KindCommit
	KindRollback
)

// KindNames name the kinds, in their order (the stand-in counts round trips by the kind of statement that ends them).
var KindNames = [...]string{"neutral", "read", "write", "ddl", "begin", "commit", "rollback"}

// Statement is one classified statement.
type Statement struct {
	Kind       Kind
	Tables     []string      // tables it names (unqualified, lower-case)
	Refusal    *sqlerr.Error // non-nil: DSQL refuses it
	AsyncIndex *AsyncIndex   // CREATE INDEX ASYNC: built in the background
	Created    string        // CREATE TABLE: the table made
	IAM        *IAMGrant     // AWS IAM GRANT or REVOKE: the stand-in keeps the mapping itself
	Dropped    []string      // DROP ROLE: the roles (DSQL keeps one mapped to an IAM principal)
}

// AsyncIndex is a `CREATE [UNIQUE] INDEX ASYNC`: the build to run, and the index it makes.
type AsyncIndex struct {
	Build       string // the same index, built CONCURRENTLY (PostgreSQL's non-blocking build)
	Name        string
	Schema      string // as written ("" for the search path's public)
	Table       string
	IfNotExists bool
}

// Catalog answers what the rules need to know about existing tables.
type Catalog interface {
	PrimaryKey(table string) ([]string, error)
	ColumnTypes(table string) (map[string]string, error)
	IndexCount(table string) (int, error)
}

// Classify parses `sql` (one or more statements) and classifies each. A parse error is left for
// PostgreSQL to report with its own message and position: the statement is passed on unclassified.
func Classify(sql string, catalog Catalog) ([]Statement, error) {
	if statement, ok := iamStatement(sql); ok {
		return []Statement{statement}, nil
	}
	stripped, asyncAt, err := stripAsync(sql)
	if err != nil {
		return nil, err
	}
	tree, err := pg_query.Parse(stripped)
	if err != nil {
		return nil, err
	}
	statements := make([]Statement, 0, len(tree.GetStmts()))
	for _, raw := range tree.GetStmts() {
		start := int(raw.GetStmtLocation())
		end := start + int(raw.GetStmtLen())
		if raw.GetStmtLen() == 0 {
			end = len(stripped)
		}
		async := false
		for _, at := range asyncAt {
			async = async || (at >= start && at <= end)
		}
		statements = append(statements, classify(raw.GetStmt(), tree.GetVersion(), async, catalog))
	}
	return statements, nil
}

// stripAsync removes the ASYNC of every `CREATE [UNIQUE] INDEX ASYNC` (which PostgreSQL's grammar
// does not know) and returns the offsets, in the stripped text, where each one stood.
func stripAsync(sql string) (string, []int, error) {
	scanned, err := pg_query.Scan(sql)
	if err != nil {
		return "", nil, err
	}
	tokens := scanned.GetTokens()
	var builder strings.Builder
	var positions []int
	copied := 0
	for i, token := range tokens {
		if token.GetToken() != pg_query.Token_INDEX || i == 0 || i+1 >= len(tokens) {
			continue
		}
		previous := tokens[i-1].GetToken()
		if previous == pg_query.Token_UNIQUE && i >= 2 {
			previous = tokens[i-2].GetToken()
		}
		next := tokens[i+1]
		word := sql[next.GetStart():next.GetEnd()]
		if previous != pg_query.Token_CREATE || next.GetToken() != pg_query.Token_IDENT || !strings.EqualFold(word, "async") {
			continue
		}
		builder.WriteString(sql[copied:next.GetStart()])
		positions = append(positions, builder.Len())
		copied = int(next.GetEnd())
	}
	builder.WriteString(sql[copied:])
	return builder.String(), positions, nil
}

func classify(node *pg_query.Node, version int32, async bool, catalog Catalog) Statement {
	statement := Statement{Tables: tables(node)}
	statement.Kind = kindOf(node, len(statement.Tables) > 0)
	statement.Refusal = refusal(node, async, catalog)
	if index := node.GetIndexStmt(); index != nil && async && statement.Refusal == nil {
		index.Concurrent = true
		build, err := pg_query.Deparse(&pg_query.ParseResult{Version: version, Stmts: []*pg_query.RawStmt{{Stmt: node}}})
		if err == nil {
			statement.AsyncIndex = &AsyncIndex{Build: build, Name: index.GetIdxname(),
				Schema: index.GetRelation().GetSchemaname(), Table: index.GetRelation().GetRelname(), IfNotExists: index.GetIfNotExists()}
		}
	}
	if create := node.GetCreateStmt(); create != nil {
		statement.Created = strings.ToLower(create.GetRelation().GetRelname())
	}
	for _, role := range node.GetDropRoleStmt().GetRoles() {
		statement.Dropped = append(statement.Dropped, role.GetRoleSpec().GetRolename())
	}
	return statement
}

func kindOf(node *pg_query.Node, touchesTables bool) Kind {
	switch {
	case node.GetTransactionStmt() != nil:
		switch node.GetTransactionStmt().GetKind() {
		case pg_query.TransactionStmtKind_TRANS_STMT_BEGIN, pg_query.TransactionStmtKind_TRANS_STMT_START:
			return KindBegin
		case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT:
			return KindCommit
		case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK:
			return KindRollback
		}
		return KindNeutral
	case node.GetInsertStmt() != nil, node.GetUpdateStmt() != nil, node.GetDeleteStmt() != nil,
		node.GetMergeStmt() != nil, node.GetCopyStmt().GetIsFrom():
		return KindDML
	case node.GetSelectStmt() != nil, node.GetExplainStmt() != nil, node.GetCallStmt() != nil,
		node.GetCopyStmt() != nil: // COPY ... TO STDOUT reads
		if touchesTables {
			return KindRead
		}
		return KindNeutral
	case node.GetVariableSetStmt() != nil, node.GetVariableShowStmt() != nil, node.GetPrepareStmt() != nil,
		node.GetExecuteStmt() != nil, node.GetDeallocateStmt() != nil, node.GetDiscardStmt() != nil:
		return KindNeutral
	}
	return KindDDL
}

// tables lists every table a statement names.
func tables(node *pg_query.Node) []string {
	seen := map[string]bool{}
	var names []string
	walk(node.ProtoReflect(), func(message any) {
		if rv, ok := message.(*pg_query.RangeVar); ok {
			name := strings.ToLower(rv.GetRelname())
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	})
	return names
}

// walk visits every message of a parse tree (Nodes and the structs they hold); the tree is protobuf,
// so it is walked by reflection rather than case by case over PostgreSQL's hundreds of node types.
func walk(message protoreflect.Message, visit func(any)) {
	visit(message.Interface())
	message.Range(func(field protoreflect.FieldDescriptor, value protoreflect.Value) bool {
		if field.Message() == nil {
			return true
		}
		if field.IsList() {
			list := value.List()
			for i := 0; i < list.Len(); i++ {
				walk(list.Get(i).Message(), visit)
			}
			return true
		}
		if field.IsMap() {
			return true
		}
		walk(value.Message(), visit)
		return true
	})
}
