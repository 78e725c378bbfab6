package dialect

import (
	"fmt"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/temporal-dsql-deploy/dsql-local/internal/sqlerr"
)

// DSQL's schema limits (CHAP_quotas) and its smallest large sequence cache (create-sequence-syntax-support).
const (
	maxKeyColumns   = 8
	maxTableColumns = 255
	maxIndexes      = 24
	minBigCache     = 65536
)

// Types DSQL refuses in a primary or index key (supported-data-types).
var refusedKeyTypes = map[string]bool{"bytea": true, "json": true, "jsonb": true, "interval": true, "timetz": true}

// Session parameters DSQL lets a client SET; others fail (working-with-postgresql-compatibility).
var settableParameters = map[string]bool{
	"application_name": true, "client_encoding": true, "datestyle": true, "extra_float_digits": true,
	"intervalstyle": true, "search_path": true, "statement_timeout": true, "timezone": true,
	"idle_in_transaction_session_timeout": true, "standard_conforming_strings": true, "bytea_output": true,
	"client_min_messages": true,
}

var serialTypes = map[string]bool{"serial": true, "bigserial": true, "smallserial": true, "serial4": true, "serial8": true, "serial2": true}

func refuse(code, rule, format string, args ...any) *sqlerr.Error {
	return sqlerr.New(code, rule, format, args...)
}

func notSupported(rule, format string, args ...any) *sqlerr.Error {
	return refuse(sqlerr.FeatureNotSupported, rule, format, args...)
}

// refusal returns DSQL's error for a statement it refuses, or nil.
func refusal(node *pg_query.Node, async bool, catalog Catalog) *sqlerr.Error {
	if err := statementRule(node, async, catalog); err != nil {
		return err
	}
	var found *sqlerr.Error
	walk(node.ProtoReflect(), func(message any) { // clauses that may stand anywhere in a statement
		if found != nil {
			return
		}
		if locking, ok := message.(*pg_query.LockingClause); ok {
			switch locking.GetStrength() {
			case pg_query.LockClauseStrength_LCS_FORSHARE, pg_query.LockClauseStrength_LCS_FORNOKEYUPDATE:
				found = notSupported("locking_strength", "locking clauses other than FOR UPDATE/FOR KEY SHARE are not supported")
			}
		}
		if _, ok := message.(*pg_query.RangeTableSample); ok {
			found = notSupported("tablesample", "TABLESAMPLE clause not supported")
		}
		if copy, ok := message.(*pg_query.CopyStmt); ok { // also inside a BEGIN ATOMIC function body
			found = copyRule(copy)
		}
	})
	if found != nil {
		return found
	}
	if sel := node.GetSelectStmt(); sel != nil {
		return forUpdateRule(sel, catalog)
	}
	return nil
}

func statementRule(node *pg_query.Node, async bool, catalog Catalog) *sqlerr.Error {
	switch {
	case node.GetTruncateStmt() != nil:
		return notSupported("truncate", "unsupported statement: Truncate")
	case node.GetCreateTrigStmt() != nil:
		return notSupported("trigger", "CREATE TRIGGER not supported")
	case node.GetCreateExtensionStmt() != nil:
		return notSupported("extension", "unsupported statement: CreateExtension")
	case node.GetCreatedbStmt() != nil:
		return notSupported("create_database", "unsupported statement: Createdb")
	case node.GetDoStmt() != nil:
		return notSupported("plpgsql", "DO blocks are not supported (PL/pgSQL)")
	case node.GetCreateFunctionStmt() != nil:
		return functionRule(node.GetCreateFunctionStmt(), catalog)
	case node.GetCreateStmt() != nil:
		return createTableRule(node.GetCreateStmt())
	case node.GetIndexStmt() != nil:
		return indexRule(node.GetIndexStmt(), async, catalog)
	case node.GetCreateSeqStmt() != nil:
		if err := sequenceTypeRule(node.GetCreateSeqStmt().GetOptions()); err != nil {
			return err
		}
		return cacheRule(node.GetCreateSeqStmt().GetOptions(), "CREATE SEQUENCE")
	case node.GetAlterSeqStmt() != nil:
		return sequenceTypeRule(node.GetAlterSeqStmt().GetOptions())
	case node.GetAlterTableStmt() != nil:
		return alterTableRule(node.GetAlterTableStmt(), catalog)
	case node.GetTransactionStmt() != nil:
		return transactionRule(node.GetTransactionStmt())
	case node.GetVariableSetStmt() != nil:
		return setRule(node.GetVariableSetStmt())
	case node.GetCreateTableAsStmt() != nil:
		return notSupported("create_table_as", "unsupported statement: CreateTableAs")
	case node.GetCreateEnumStmt() != nil:
		return notSupported("enum_type", "CREATE TYPE not supported")
	case node.GetCompositeTypeStmt() != nil:
		return notSupported("composite_type", "unsupported statement: CompositeType")
	case node.GetVacuumStmt() != nil && node.GetVacuumStmt().GetIsVacuumcmd():
		return notSupported("vacuum", "unsupported VACUUM statement")
	case node.GetListenStmt() != nil:
		return notSupported("listen", "unsupported statement: Listen")
	case node.GetNotifyStmt() != nil:
		return notSupported("notify", "unsupported statement: Notify")
	case node.GetAlterSystemStmt() != nil:
		return notSupported("alter_system", "unsupported statement: AlterSystem")
	case node.GetCreateTableSpaceStmt() != nil:
		return notSupported("tablespace", "unsupported statement: CreateTableSpace")
	case node.GetMergeStmt() != nil:
		return notSupported("merge", "unsupported statement type: MERGE")
	case node.GetDeclareCursorStmt() != nil:
		return notSupported("cursor", "unsupported statement: DeclareCursor")
	}
	return roleRule(node)
}

// roleRule holds role statements to what DSQL's roles may do: no passwords, no predefined pg_* roles (also
// through `CREATE ROLE ... IN ROLE` and `ALTER GROUP ... ADD USER`). SQL function bodies are held to it too.
func roleRule(node *pg_query.Node) *sqlerr.Error {
	switch {
	case node.GetCreateRoleStmt() != nil:
		if refusal := passwordRule(node.GetCreateRoleStmt().GetOptions()); refusal != nil {
			return refusal
		}
		return predefinedRoleRule(createRoleMemberships(node.GetCreateRoleStmt().GetOptions()))
	case node.GetGrantRoleStmt() != nil && node.GetGrantRoleStmt().GetIsGrant():
		return predefinedRoleRule(node.GetGrantRoleStmt().GetGrantedRoles())
	case node.GetAlterRoleStmt() != nil:
		alter := node.GetAlterRoleStmt()
		if refusal := passwordRule(alter.GetOptions()); refusal != nil {
			return refusal
		}
		for _, option := range alter.GetOptions() {
			if option.GetDefElem().GetDefname() == "rolemembers" && alter.GetAction() > 0 { // ALTER GROUP g ADD USER
				return predefinedRoleRule([]*pg_query.Node{{Node: &pg_query.Node_RoleSpec{RoleSpec: alter.GetRole()}}})
			}
		}
	}
	return nil
}

// passwordRule: DSQL's roles log in with IAM tokens only (using-database-and-iam-roles), so a role is given
// no password; the stand-in keeps the backend password of a mapped role, which a client must not replace.
func passwordRule(options []*pg_query.Node) *sqlerr.Error {
	for _, option := range options {
		if option.GetDefElem().GetDefname() == "password" {
			return notSupported("role_password", "PASSWORD is not supported: roles authenticate with IAM (AWS IAM GRANT)")
		}
	}
	return nil
}

// createRoleMemberships: the roles `CREATE ROLE ... IN ROLE r` makes the new role a member of.
func createRoleMemberships(options []*pg_query.Node) []*pg_query.Node {
	for _, option := range options {
		if option.GetDefElem().GetDefname() == "addroleto" {
			return option.GetDefElem().GetArg().GetList().GetItems()
		}
	}
	return nil
}

// predefinedRoleRule: PostgreSQL's predefined pg_* roles (pg_read_server_files, pg_execute_server_program, ...)
// reach the server's files and programs. The stand-in's backend role has CREATEROLE, which in PostgreSQL 15
// may grant them; DSQL's admin has no such roles to give, so granting one is refused as PostgreSQL refuses a
// role without ADMIN on it.
func predefinedRoleRule(roles []*pg_query.Node) *sqlerr.Error {
	for _, role := range roles {
		name := role.GetAccessPriv().GetPrivName()
		if name == "" {
			name = role.GetRoleSpec().GetRolename()
		}
		if strings.HasPrefix(name, "pg_") {
			refusal := refuse(sqlerr.InsufficientPrivilege, "grant_predefined_role", "permission denied to grant role \"%s\"", name)
			refusal.Detail = fmt.Sprintf(`Only roles with the ADMIN option on role "%s" may grant this role.`, name)
			return refusal
		}
	}
	return nil
}

func functionRule(function *pg_query.CreateFunctionStmt, catalog Catalog) *sqlerr.Error {
	language, body := "sql", ""
	for _, option := range function.GetOptions() {
		def := option.GetDefElem()
		switch def.GetDefname() {
		case "language":
			language = strings.ToLower(def.GetArg().GetString_().GetSval())
		case "as":
			if items := def.GetArg().GetList().GetItems(); len(items) == 1 {
				body = items[0].GetString_().GetSval()
			}
		}
	}
	if language != "sql" {
		return notSupported("function_language", "CREATE FUNCTION with language %s not supported", language)
	}
	// A SQL function may run almost any statement (COPY to or from a server file or program, role statements,
	// DO and CREATE FUNCTION of another language), so its body is held to every rule, statement by statement.
	if tree, err := pg_query.Parse(body); err == nil && body != "" {
		for _, raw := range tree.GetStmts() {
			if found := refusal(raw.GetStmt(), false, catalog); found != nil {
				return found
			}
			var found *sqlerr.Error
			walk(raw.GetStmt().ProtoReflect(), func(message any) {
				if copy, ok := message.(*pg_query.CopyStmt); ok && found == nil {
					found = copyRule(copy)
				}
			})
			if found != nil {
				return found
			}
		}
	}
	return nil
}

// The hint PostgreSQL gives a role that may not COPY on the server.
const copyHint = "Anyone can COPY to stdout or from stdin. psql's \\copy command also works for anyone."

// copyRule: COPY to or from a file or a program on the server is refused, as PostgreSQL 16 (DSQL's
// engine) refuses it to a role without pg_read_server_files, pg_write_server_files or
// pg_execute_server_program, which DSQL's admin is not given: DSQL loads data with psql's \copy, COPY
// FROM STDIN over the connection (loading-data). COPY FROM STDIN and TO STDOUT pass.
func copyRule(copy *pg_query.CopyStmt) *sqlerr.Error {
	var refusal *sqlerr.Error
	switch {
	case copy.GetIsProgram():
		refusal = refuse(sqlerr.InsufficientPrivilege, "copy_program", "permission denied to COPY to or from an external program")
		refusal.Detail = `Only roles with privileges of the "pg_execute_server_program" role may COPY to or from an external program.`
	case copy.GetFilename() == "":
		return nil // STDIN or STDOUT: the data travels over the connection
	case copy.GetIsFrom():
		refusal = refuse(sqlerr.InsufficientPrivilege, "copy_file", "permission denied to COPY from a file")
		refusal.Detail = `Only roles with privileges of the "pg_read_server_files" role may COPY from a file.`
	default:
		refusal = refuse(sqlerr.InsufficientPrivilege, "copy_file", "permission denied to COPY to a file")
		refusal.Detail = `Only roles with privileges of the "pg_write_server_files" role may COPY to a file.`
	}
	refusal.Hint = copyHint
	return refusal
}

func typeName(name *pg_query.TypeName) string {
	parts := name.GetNames()
	if len(parts) == 0 {
		return ""
	}
	return strings.ToLower(parts[len(parts)-1].GetString_().GetSval())
}

func createTableRule(create *pg_query.CreateStmt) *sqlerr.Error {
	switch create.GetRelation().GetRelpersistence() {
	case "t":
		return notSupported("temporary_table", "TEMPORARY or TEMP table not supported for CREATE TABLE")
	case "u":
		return notSupported("unlogged_table", "UNLOGGED table not supported for CREATE TABLE")
	}
	if create.GetPartspec() != nil {
		return notSupported("partition", "PARTITION BY not supported for CREATE TABLE")
	}
	if len(create.GetInhRelations()) > 0 || create.GetPartbound() != nil {
		return notSupported("inherits", "INHERITS and PARTITION OF not supported for CREATE TABLE")
	}
	types := map[string]string{}
	var keys [][]string
	for _, element := range create.GetTableElts() {
		if column := element.GetColumnDef(); column != nil {
			kind := typeName(column.GetTypeName())
			types[strings.ToLower(column.GetColname())] = kind
			if serialTypes[kind] {
				return refuse(sqlerr.UndefinedObject, "serial", "type \"%s\" does not exist", kind)
			}
			for _, c := range column.GetConstraints() {
				constraint := c.GetConstraint()
				switch constraint.GetContype() {
				case pg_query.ConstrType_CONSTR_PRIMARY, pg_query.ConstrType_CONSTR_UNIQUE:
					keys = append(keys, []string{strings.ToLower(column.GetColname())})
				case pg_query.ConstrType_CONSTR_IDENTITY:
					if kind != "int8" && kind != "bigint" {
						return notSupported("identity_type", "datatype %s not supported, identity column type must be bigint", kind)
					}
					if err := cacheRule(constraint.GetOptions(), "identity column"); err != nil {
						return err
					}
				}
			}
		}
		if constraint := element.GetConstraint(); constraint != nil {
			switch constraint.GetContype() {
			case pg_query.ConstrType_CONSTR_PRIMARY, pg_query.ConstrType_CONSTR_UNIQUE:
				var key []string
				for _, k := range constraint.GetKeys() {
					key = append(key, strings.ToLower(k.GetString_().GetSval()))
				}
				keys = append(keys, key)
			}
		}
	}
	if len(types) > maxTableColumns {
		return tooManyColumns()
	}
	for _, key := range keys {
		if err := keyRule(key, types); err != nil {
			return err
		}
	}
	if len(keys) > maxIndexes {
		return tooManyIndexes()
	}
	return nil
}

func tooManyColumns() *sqlerr.Error {
	return refuse(sqlerr.TooManyColumns, "table_columns", "tables can have at most %d columns", maxTableColumns)
}

func tooManyIndexes() *sqlerr.Error {
	return refuse(sqlerr.ProgramLimitExceeded, "table_indexes", "more than %d indexes per table are not allowed", maxIndexes)
}

func keyRule(columns []string, types map[string]string) *sqlerr.Error {
	if len(columns) > maxKeyColumns {
		return refuse(sqlerr.TooManyColumns, "key_columns", "more than %d column keys in an index are not supported", maxKeyColumns)
	}
	for _, column := range columns {
		if refusedKeyTypes[types[column]] {
			return notSupported("key_type", "datatype %s not supported as a key column (%s)", types[column], column)
		}
	}
	return nil
}

func indexRule(index *pg_query.IndexStmt, async bool, catalog Catalog) *sqlerr.Error {
	if !async {
		return notSupported("sync_index", "unsupported mode. please use CREATE INDEX ASYNC.")
	}
	if index.GetConcurrent() {
		return notSupported("index_concurrently", "CREATE INDEX CONCURRENTLY is not supported; use CREATE INDEX ASYNC")
	}
	var columns []string
	for _, param := range index.GetIndexParams() { // an expression is a key column too, named "" here
		columns = append(columns, strings.ToLower(param.GetIndexElem().GetName()))
	}
	table := strings.ToLower(index.GetRelation().GetRelname())
	types, err := catalog.ColumnTypes(table)
	if err != nil {
		types = map[string]string{} // an unknown table: PostgreSQL reports it
	}
	if err := keyRule(columns, types); err != nil {
		return err
	}
	if count, err := catalog.IndexCount(table); err == nil && count >= maxIndexes {
		return tooManyIndexes()
	}
	return nil
}

// sequenceTypeRule: DSQL's sequences are bigint (create-sequence-syntax-support: "data_type is BIGINT").
func sequenceTypeRule(options []*pg_query.Node) *sqlerr.Error {
	for _, option := range options {
		def := option.GetDefElem()
		if def.GetDefname() != "as" {
			continue
		}
		if kind := typeName(def.GetArg().GetTypeName()); kind != "int8" && kind != "bigint" {
			return notSupported("sequence_type", "datatype %s not supported, sequence type must be bigint", kind)
		}
	}
	return nil
}

// cacheRule: DSQL's sequences and identity columns must state CACHE 1 or CACHE >= 65536.
func cacheRule(options []*pg_query.Node, what string) *sqlerr.Error {
	for _, option := range options {
		def := option.GetDefElem()
		if def.GetDefname() == "cache" {
			if value := def.GetArg().GetInteger().GetIval(); value == 1 || value >= minBigCache {
				return nil
			}
		}
	}
	return notSupported("sequence_cache", "%s is not supported without an explicit cache size. please define CACHE greater than or equal to 65536 or equal to 1", what)
}

// alterTableRule: the forms DSQL's ALTER TABLE page lists, and its limits on columns and keys.
func alterTableRule(alter *pg_query.AlterTableStmt, catalog Catalog) *sqlerr.Error {
	table := strings.ToLower(alter.GetRelation().GetRelname())
	added := 0
	for _, command := range alter.GetCmds() {
		cmd := command.GetAlterTableCmd()
		switch cmd.GetSubtype() {
		case pg_query.AlterTableType_AT_AlterColumnType:
			return notSupported("alter_column_type", "unsupported ALTER TABLE ALTER COLUMN ... SET DATA TYPE statement")
		case pg_query.AlterTableType_AT_SetNotNull:
			return notSupported("alter_set_not_null", "unsupported ALTER TABLE ALTER COLUMN ... SET NOT NULL statement")
		case pg_query.AlterTableType_AT_DropColumn:
			key, err := catalog.PrimaryKey(table)
			if err == nil && slices.Contains(key, strings.ToLower(cmd.GetName())) {
				return notSupported("drop_key_column", "cannot drop primary key column %s", strings.ToLower(cmd.GetName()))
			}
		case pg_query.AlterTableType_AT_AddConstraint:
			constraint := cmd.GetDef().GetConstraint()
			switch constraint.GetContype() {
			case pg_query.ConstrType_CONSTR_PRIMARY, pg_query.ConstrType_CONSTR_UNIQUE:
				if constraint.GetContype() == pg_query.ConstrType_CONSTR_PRIMARY || constraint.GetIndexname() == "" { // UNIQUE USING INDEX is on the page
					return notSupported("alter_add_key", "unsupported ALTER TABLE ADD CONSTRAINT statement")
				}
			case pg_query.ConstrType_CONSTR_CHECK, pg_query.ConstrType_CONSTR_FOREIGN:
				if !constraint.GetSkipValidation() {
					return notSupported("alter_add_constraint_valid", "unsupported ALTER TABLE ADD CONSTRAINT statement")
				}
			}
		case pg_query.AlterTableType_AT_AddColumn:
			added++
			column := cmd.GetDef().GetColumnDef()
			if serialTypes[typeName(column.GetTypeName())] {
				return refuse(sqlerr.UndefinedObject, "serial", "type \"%s\" does not exist", typeName(column.GetTypeName()))
			}
			for _, c := range column.GetConstraints() {
				switch c.GetConstraint().GetContype() {
				case pg_query.ConstrType_CONSTR_DEFAULT, pg_query.ConstrType_CONSTR_NOTNULL:
					return notSupported("add_column_constraint", "ALTER TABLE ADD COLUMN with a DEFAULT or NOT NULL constraint is not supported")
				case pg_query.ConstrType_CONSTR_PRIMARY, pg_query.ConstrType_CONSTR_UNIQUE:
					return notSupported("alter_add_key", "unsupported ALTER TABLE ADD CONSTRAINT statement")
				}
			}
		}
	}
	if added > 0 {
		if types, err := catalog.ColumnTypes(table); err == nil && len(types) > 0 && len(types)+added > maxTableColumns {
			return tooManyColumns()
		}
	}
	return nil
}

func transactionRule(transaction *pg_query.TransactionStmt) *sqlerr.Error {
	switch transaction.GetKind() {
	case pg_query.TransactionStmtKind_TRANS_STMT_SAVEPOINT:
		return notSupported("savepoint", "unsupported transaction statement: SAVEPOINT")
	case pg_query.TransactionStmtKind_TRANS_STMT_RELEASE:
		return notSupported("savepoint", "unsupported transaction statement: RELEASE")
	case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
		return notSupported("savepoint", "unsupported transaction statement: ROLLBACK TO")
	case pg_query.TransactionStmtKind_TRANS_STMT_PREPARE, pg_query.TransactionStmtKind_TRANS_STMT_COMMIT_PREPARED,
		pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_PREPARED:
		return notSupported("two_phase", "unsupported transaction statement: two-phase commit")
	}
	return isolationRule(transaction.GetOptions())
}

// isolationRule: DSQL runs every transaction at REPEATABLE READ and refuses any other level.
func isolationRule(options []*pg_query.Node) *sqlerr.Error {
	for _, option := range options {
		def := option.GetDefElem()
		if def.GetDefname() != "transaction_isolation" {
			continue
		}
		level := strings.ToLower(def.GetArg().GetAConst().GetSval().GetSval())
		if level != "repeatable read" {
			return notSupported("isolation", "isolation level %s is not supported; DSQL runs transactions at REPEATABLE READ", level)
		}
	}
	return nil
}

func setRule(set *pg_query.VariableSetStmt) *sqlerr.Error {
	name := strings.ToLower(set.GetName())
	switch name {
	case "transaction", "session characteristics":
		if err := isolationRule(set.GetArgs()); err != nil {
			return err
		}
		return nil
	case "transaction_isolation", "default_transaction_isolation":
		return notSupported("isolation", "setting configuration parameter \"%s\" not supported", name)
	case "":
		return nil // RESET ALL
	}
	if !settableParameters[name] {
		return notSupported("session_parameter", "setting configuration parameter \"%s\" not supported", name)
	}
	return nil
}

// forUpdateRule: DSQL takes FOR UPDATE only on one table, with equality on its whole primary key.
func forUpdateRule(sel *pg_query.SelectStmt, catalog Catalog) *sqlerr.Error {
	forUpdate := false
	for _, clause := range sel.GetLockingClause() {
		forUpdate = forUpdate || clause.GetLockingClause().GetStrength() == pg_query.LockClauseStrength_LCS_FORUPDATE
	}
	if !forUpdate {
		return nil
	}
	from := sel.GetFromClause()
	if len(from) != 1 || from[0].GetRangeVar() == nil {
		return notSupported("for_update_join", "FOR UPDATE is supported on a single table only, not over a join or subquery")
	}
	table := strings.ToLower(from[0].GetRangeVar().GetRelname())
	alias := strings.ToLower(from[0].GetRangeVar().GetAlias().GetAliasname())
	key, err := catalog.PrimaryKey(table)
	if err != nil || len(key) == 0 {
		return nil // an unknown table or one without a key: PostgreSQL reports what is wrong
	}
	equal := equalities(sel.GetWhereClause(), table, alias)
	for _, column := range key {
		if !equal[column] {
			return notSupported("for_update_key", "FOR UPDATE needs an equality condition on every primary key column of %s (missing %s)", table, column)
		}
	}
	return nil
}

// equalities lists the columns the WHERE clause fixes with `column = expression` in its top-level AND.
func equalities(where *pg_query.Node, table, alias string) map[string]bool {
	found := map[string]bool{}
	var visit func(*pg_query.Node)
	visit = func(node *pg_query.Node) {
		if boolean := node.GetBoolExpr(); boolean != nil {
			if boolean.GetBoolop() == pg_query.BoolExprType_AND_EXPR {
				for _, arg := range boolean.GetArgs() {
					visit(arg)
				}
			}
			return
		}
		expr := node.GetAExpr()
		if expr == nil || expr.GetKind() != pg_query.A_Expr_Kind_AEXPR_OP || len(expr.GetName()) != 1 ||
			expr.GetName()[0].GetString_().GetSval() != "=" {
			return
		}
		for _, side := range []*pg_query.Node{expr.GetLexpr(), expr.GetRexpr()} {
			if column := columnOf(side, table, alias); column != "" {
				found[column] = true
			}
		}
	}
	if where != nil {
		visit(where)
	}
	return found
}

func columnOf(node *pg_query.Node, table, alias string) string {
	ref := node.GetColumnRef()
	if ref == nil {
		return ""
	}
	var parts []string
	for _, field := range ref.GetFields() {
		parts = append(parts, strings.ToLower(field.GetString_().GetSval()))
	}
	switch len(parts) {
	case 1:
		return parts[0]
	case 2:
		if parts[0] == table || parts[0] == alias {
			return parts[1]
		}
	}
	return ""
}
