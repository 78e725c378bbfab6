package dialect

import (
	"fmt"
	"strings"
	"testing"
)

type catalog map[string][]string

func (c catalog) PrimaryKey(table string) ([]string, error) { return c[table], nil }
func (c catalog) ColumnTypes(table string) (map[string]string, error) {
	if table == "wide" { // 255 columns: the most a table may have
		types := map[string]string{}
		for i := range maxTableColumns {
			types[fmt.Sprintf("c%d", i)] = "int4"
		}
		return types, nil
	}
	return map[string]string{"id": "bytea", "name": "text", "doc": "jsonb"}, nil
}

// IndexCount: "indexed" has the 24 indexes a table may have, every other table one (its key).
func (c catalog) IndexCount(table string) (int, error) {
	if table == "indexed" {
		return maxIndexes, nil
	}
	return 1, nil
}

// columnList is "c0 int, c1 int, ..." with n columns.
func columnList(n int) string {
	columns := make([]string, n)
	for i := range columns {
		columns[i] = fmt.Sprintf("c%d int", i)
	}
	return strings.Join(columns, ", ")
}

// uniqueList is "UNIQUE (c0), UNIQUE (c1), ..." with n constraints.
func uniqueList(n int) string {
	constraints := make([]string, n)
	for i := range constraints {
		constraints[i] = fmt.Sprintf("UNIQUE (c%d)", i)
	}
	return strings.Join(constraints, ", ")
}

func TestSchemaLimits(t *testing.T) {
	cases := []struct {
		sql, rule, code, message string
	}{
		{"CREATE TABLE t (" + columnList(256) + ")", "table_columns", "54011", "tables can have at most 255 columns"},
		{"CREATE TABLE t (" + columnList(255) + ")", "", "", ""},
		{"ALTER TABLE wide ADD COLUMN extra int", "table_columns", "54011", "tables can have at most 255 columns"},
		{"ALTER TABLE shards ADD COLUMN extra int", "", "", ""},
		{"CREATE TABLE t (a int, b int, c int, d int, e int, f int, g int, h int, i int, PRIMARY KEY (a,b,c,d,e,f,g,h,i))",
			"key_columns", "54011", "more than 8 column keys in an index are not supported"},
		{"CREATE INDEX ASYNC i ON shards (a, b, c, d, e, f, g, h, lower(name))", "key_columns", "54011", "more than 8 column keys"},
		{"CREATE INDEX ASYNC i ON shards (a, b, c, d, e, f, g, h)", "", "", ""},
		{"CREATE TABLE t (" + columnList(30) + ", PRIMARY KEY (c29), " + uniqueList(24) + ")",
			"table_indexes", "54000", "more than 24 indexes per table are not allowed"},
		{"CREATE TABLE t (" + columnList(30) + ", PRIMARY KEY (c29), " + uniqueList(23) + ")", "", "", ""},
		{"CREATE INDEX ASYNC i ON indexed (name)", "table_indexes", "54000", "more than 24 indexes per table are not allowed"},
		{"ALTER TABLE shards ALTER COLUMN name SET NOT NULL", "alter_set_not_null", "0A000", "SET NOT NULL"},
		{"ALTER TABLE shards ALTER COLUMN name DROP NOT NULL", "", "", ""},
		{"ALTER TABLE executions DROP COLUMN run_id", "drop_key_column", "0A000", "cannot drop primary key column run_id"},
		{"ALTER TABLE executions DROP COLUMN data", "", "", ""},
		{"ALTER TABLE shards ADD CONSTRAINT c CHECK (range_id > 0)", "alter_add_constraint_valid", "0A000", "ADD CONSTRAINT"},
		{"ALTER TABLE shards ADD CONSTRAINT c CHECK (range_id > 0) NOT VALID", "", "", ""},
		{"ALTER TABLE shards ADD CONSTRAINT f FOREIGN KEY (p) REFERENCES executions (x)", "alter_add_constraint_valid", "0A000", ""},
		{"ALTER TABLE shards ADD CONSTRAINT f FOREIGN KEY (p) REFERENCES executions (x) NOT VALID", "", "", ""},
		{"CREATE SEQUENCE s AS integer CACHE 1", "sequence_type", "0A000", "sequence type must be bigint"},
		{"CREATE SEQUENCE s AS bigint CACHE 1", "", "", ""},
		{"ALTER SEQUENCE s AS smallint", "sequence_type", "0A000", "bigint"},
	}
	for _, c := range cases {
		got := one(t, c.sql).Refusal
		switch {
		case c.rule == "" && got != nil:
			t.Errorf("%.80s: refused: %v", c.sql, got)
		case c.rule != "" && (got == nil || got.Rule != c.rule || got.Code != c.code || !strings.Contains(got.Message, c.message)):
			t.Errorf("%.80s: want %s %s %q, got %+v", c.sql, c.rule, c.code, c.message, got)
		}
	}
}

var knownTables = catalog{"shards": {"shard_id"}, "executions": {"shard_id", "namespace_id", "workflow_id", "run_id"}}

func one(t *testing.T, sql string) Statement {
	t.Helper()
	statements, err := Classify(sql, knownTables)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if len(statements) != 1 {
		t.Fatalf("%s: %d statements", sql, len(statements))
	}
	return statements[0]
}

func TestRefusals(t *testing.T) {
	refused := map[string]string{
		"SELECT range_id FROM shards WHERE shard_id = $1 FOR SHARE":                      "locking_strength",
		"SELECT * FROM shards WHERE shard_id = 1 FOR NO KEY UPDATE":                      "locking_strength",
		"SELECT * FROM shards s JOIN executions e ON true WHERE s.shard_id=1 FOR UPDATE": "for_update_join",
		"SELECT * FROM executions WHERE shard_id = 1 FOR UPDATE":                         "for_update_key",
		"TRUNCATE shards":                                     "truncate",
		"CREATE TEMP TABLE t (id int primary key)":            "temporary_table",
		"CREATE UNLOGGED TABLE t (id int primary key)":        "unlogged_table",
		"CREATE TABLE t (id serial primary key)":              "serial",
		"CREATE TABLE t (id bytea primary key)":               "key_type",
		"CREATE TABLE t (a int, b jsonb, PRIMARY KEY (a, b))": "key_type",
		"CREATE TABLE t (a int, b int, c int, d int, e int, f int, g int, h int, i int, PRIMARY KEY (a,b,c,d,e,f,g,h,i))": "key_columns",
		"CREATE INDEX i ON shards (shard_id)":                         "sync_index",
		"CREATE INDEX ASYNC i ON shards (id)":                         "key_type",
		"SAVEPOINT s":                                                 "savepoint",
		"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE":                "isolation",
		"BEGIN ISOLATION LEVEL READ COMMITTED":                        "isolation",
		"SET work_mem = '1GB'":                                        "session_parameter",
		"CREATE EXTENSION pgcrypto":                                   "extension",
		"CREATE TABLE p (id int primary key) PARTITION BY RANGE (id)": "partition",
		"DO $$ BEGIN END $$":                                          "plpgsql",
		"CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$": "function_language",
		"CREATE SEQUENCE s":           "sequence_cache",
		"CREATE SEQUENCE s CACHE 100": "sequence_cache",
		"CREATE TRIGGER t AFTER INSERT ON shards FOR EACH ROW EXECUTE FUNCTION f()": "trigger",
	}
	for sql, rule := range refused {
		got := one(t, sql)
		if got.Refusal == nil || got.Refusal.Rule != rule {
			t.Errorf("%s: want rule %s, got %+v", sql, rule, got.Refusal)
		}
	}
	allowed := []string{
		"SELECT range_id FROM shards WHERE shard_id = $1 FOR UPDATE",
		"SELECT * FROM executions WHERE shard_id=1 AND namespace_id=$2 AND workflow_id=$3 AND run_id=$4 FOR UPDATE",
		"SELECT * FROM shards WHERE shard_id = 1 FOR KEY SHARE",
		"CREATE SEQUENCE s CACHE 1",
		"CREATE SEQUENCE s CACHE 65536",
		"CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY (CACHE 70000) PRIMARY KEY, doc jsonb)",
		"CREATE TABLE c (id uuid primary key, p uuid REFERENCES t(id))",
		"BEGIN ISOLATION LEVEL REPEATABLE READ",
		"SET application_name = 'x'",
		"CREATE UNIQUE INDEX ASYNC IF NOT EXISTS i ON shards (name)",
	}
	for _, sql := range allowed {
		if got := one(t, sql); got.Refusal != nil {
			t.Errorf("%s: refused: %v", sql, got.Refusal)
		}
	}
}

func TestAsyncIndexBecomesAConcurrentBuild(t *testing.T) {
	got := one(t, "create unique index async idx_name on shards (name)")
	if got.AsyncIndex == nil || !strings.Contains(got.AsyncIndex.Build, "CONCURRENTLY") || got.AsyncIndex.Name != "idx_name" {
		t.Fatalf("%+v", got.AsyncIndex)
	}
	if got.Kind != KindDDL {
		t.Fatalf("kind %v", got.Kind)
	}
}

func TestKindsAndTables(t *testing.T) {
	statements, err := Classify("BEGIN; UPDATE shards SET range_id = 2 WHERE shard_id = 1; SELECT 1; COMMIT", knownTables)
	if err != nil {
		t.Fatal(err)
	}
	kinds := []Kind{statements[0].Kind, statements[1].Kind, statements[2].Kind, statements[3].Kind}
	if kinds[0] != KindBegin || kinds[1] != KindDML || kinds[2] != KindNeutral || kinds[3] != KindCommit {
		t.Fatalf("kinds %v", kinds)
	}
	if len(statements[1].Tables) != 1 || statements[1].Tables[0] != "shards" {
		t.Fatalf("knownTables %v", statements[1].Tables)
	}
}

func TestServerSideCopyIsRefused(t *testing.T) {
	cases := []struct {
		sql, rule, message, detail string
		kind                       Kind
	}{
		{"COPY shards TO PROGRAM 'id > /tmp/owned'", "copy_program", "permission denied to COPY to or from an external program", "pg_execute_server_program", KindRead},
		{"COPY (SELECT 1) TO PROGRAM 'id'", "copy_program", "external program", "pg_execute_server_program", KindNeutral},
		{"COPY shards FROM PROGRAM 'cat /etc/passwd'", "copy_program", "external program", "pg_execute_server_program", KindDML},
		{"COPY shards FROM '/etc/passwd'", "copy_file", "permission denied to COPY from a file", "pg_read_server_files", KindDML},
		{"COPY shards TO '/tmp/shards.csv' (FORMAT csv)", "copy_file", "permission denied to COPY to a file", "pg_write_server_files", KindRead},
		// A SQL function may COPY on the server where a statement of its own may not: its body is checked too.
		{"CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ COPY (SELECT 1) TO PROGRAM 'id' $$", "copy_program", "external program", "", KindDDL},
		{"CREATE PROCEDURE p() LANGUAGE sql AS 'COPY shards TO ''/tmp/x'''", "copy_file", "COPY to a file", "", KindDDL},
		// Over the connection (psql's \copy): allowed, as DSQL's loading-data page describes.
		{"COPY shards FROM STDIN", "", "", "", KindDML},
		{"COPY shards (shard_id) FROM STDIN WITH (FORMAT csv)", "", "", "", KindDML},
		{"COPY shards TO STDOUT", "", "", "", KindRead},
		{"COPY (SELECT shard_id FROM shards) TO STDOUT WITH (FORMAT csv, HEADER)", "", "", "", KindRead},
		{"CREATE FUNCTION g() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$", "", "", "", KindDDL},
	}
	for _, c := range cases {
		statement := one(t, c.sql)
		got := statement.Refusal
		switch {
		case c.rule == "" && got != nil:
			t.Errorf("%s: refused: %v", c.sql, got)
		case c.rule != "" && (got == nil || got.Rule != c.rule || got.Code != "42501" || !strings.Contains(got.Message, c.message) ||
			!strings.Contains(got.Detail, c.detail) || !strings.Contains(got.Hint, `\copy`)):
			t.Errorf("%s: want %s 42501 %q, got %+v", c.sql, c.rule, c.message, got)
		}
		if statement.Kind != c.kind {
			t.Errorf("%s: kind %d, want %d", c.sql, statement.Kind, c.kind)
		}
	}
	response := one(t, "COPY shards TO PROGRAM 'id'").Refusal.Response(false)
	if response.Code != "42501" || response.Detail == "" || response.Hint == "" {
		t.Fatalf("the wire refusal lost its detail or hint: %+v", response)
	}
}
