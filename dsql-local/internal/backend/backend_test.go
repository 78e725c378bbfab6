package backend

import (
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// TestLimitsFunctionParses runs a table's trigger function through PostgreSQL's own PL/pgSQL parser.
func TestLimitsFunctionParses(t *testing.T) {
	for _, m := range []measures{
		measure([]string{"shard_id"}, nil, []Column{{Name: "shard_id", Type: "int4", Length: 4}}),
		measure([]string{"shard_id", "tree_id"}, [][]string{{"tree_id", "branch_id"}},
			[]Column{{Name: "shard_id", Type: "int4", Length: 4}, {Name: "tree_id", Type: "bytea", Length: -1},
				{Name: "branch_id", Type: "bytea", Length: -1}, {Name: "data", Type: "bytea", Length: -1},
				{Name: "doc", Type: "jsonb", Length: -1}}),
	} {
		body := limitsFunction("limits_7", m)
		if _, err := pg_query.ParsePlPgSqlToJSON(body); err != nil {
			t.Errorf("%v:\n%s", err, body)
		}
	}
}

func TestMeasureCountsUncompressedSizesAndFixedWidths(t *testing.T) {
	m := measure([]string{"shard_id", "name"}, [][]string{{"at"}, {}}, []Column{
		{Name: "shard_id", Type: "int4", Length: 4},
		{Name: "name", Type: "varchar", Length: -1},
		{Name: "data", Type: "bytea", Length: -1},
		{Name: "doc", Type: "jsonb", Length: -1},
		{Name: "at", Type: "timestamptz", Length: 8},
	})
	if m.fixed != 12 {
		t.Errorf("fixed widths: want 12, got %d", m.fixed)
	}
	want := []string{`octet_length("name")`, `octet_length("data")`, `octet_length("doc"::text)`}
	if strings.Join(m.columns, "|") != strings.Join(want, "|") {
		t.Errorf("columns: want %v, got %v", want, m.columns)
	}
	if m.key != `0 + coalesce(pg_column_size("shard_id"), 0) + coalesce(octet_length("name"), 0)` { // never compressed
		t.Errorf("key: %s", m.key)
	}
	if len(m.indexes) != 1 || m.indexes[0] != `0 + coalesce(pg_column_size("at"), 0)` { // an expression index has no columns
		t.Errorf("indexes: %v", m.indexes)
	}
}

func TestLimitsFunctionRaisesDSQLsErrors(t *testing.T) {
	body := limitsFunction("limits_1", measure([]string{"id"}, [][]string{{"v"}}, []Column{{Name: "id", Type: "int8", Length: 8}, {Name: "v", Type: "text", Length: -1}}))
	for _, want := range []string{
		"'transaction row limit exceeded'", "'key size too large'", "'maximum column size exceeded'",
		"'maximum row size exceeded'", "'transaction size limit 10mb exceeded'", "'Current transaction size %smb > 10mb'",
		"IF total_rows > 3000", "IF widest_key > 1024", "IF widest_column > 1048576", "IF widest_row > 2097152", "IF total_bytes > 10485760",
		`octet_length("v") AS c0`, "greatest(c0)", `0 + coalesce(octet_length("v"), 0) AS i0`, "max(greatest(k, i0))", "8 + coalesce(c0, 0) AS r", "dsql_local.modified_bytes",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the function lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "%!") {
		t.Errorf("a formatting mistake:\n%s", body)
	}
}

func TestLimitsFunctionOfFixedWidthColumnsOnly(t *testing.T) {
	body := limitsFunction("limits_2", measure([]string{"id"}, nil, []Column{{Name: "id", Type: "int4", Length: 4}, {Name: "v", Type: "int4", Length: 4}}))
	if !strings.Contains(body, "coalesce(max(0), 0)") || !strings.Contains(body, "8 AS r") || !strings.Contains(body, "coalesce(max(k), 0)") {
		t.Errorf("a table without variable-width columns measures only fixed widths:\n%s", body)
	}
}
