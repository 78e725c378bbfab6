package dialect

import (
	"strings"
	"testing"
)

type catalog map[string][]string

func (c catalog) PrimaryKey(table string) ([]string, error) { return c[table], nil }
func (c catalog) ColumnTypes(table string) (map[string]string, error) {
	return map[string]string{"id": "bytea", "name": "text", "doc": "jsonb"}, nil
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
