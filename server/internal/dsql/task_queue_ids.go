package dsql

import (
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// task_queue_id is a variable-length byte string (namespace id, queue name, type, partition) and a key
// column, which DSQL cannot make BYTEA: the DSQL schema keeps it as lower-case hex text. Hex keeps the
// byte order (ORDER BY and `>` scans page the same way), so upstream's statements only need their
// task_queue_id parameters encoded and their task_queue_id results decoded.

var (
	compared     = regexp.MustCompile(`(?i)\btask_queue_id\s*(?:=|>=|<=|>|<)\s*\$(\d+)`)
	insertTarget = regexp.MustCompile(`(?is)^\s*INSERT\s+INTO\s+(?:tasks|tasks_v2|task_queues|task_queues_v2)\s*\(([^)]*)\)\s*VALUES\s*(.*)$`)
	rowGroup     = regexp.MustCompile(`\(([^()]*)\)`)
)

// taskQueueParameters lists the ordinals of the parameters a statement binds to task_queue_id.
func taskQueueParameters(query string) map[int]bool {
	if !strings.Contains(strings.ToLower(query), "task_queue_id") {
		return nil
	}
	ordinals := map[int]bool{}
	for _, match := range compared.FindAllStringSubmatch(query, -1) {
		if n, err := strconv.Atoi(match[1]); err == nil {
			ordinals[n] = true
		}
	}
	if insert := insertTarget.FindStringSubmatch(query); insert != nil {
		position := -1
		for i, column := range strings.Split(insert[1], ",") {
			if strings.EqualFold(strings.TrimSpace(column), "task_queue_id") {
				position = i
			}
		}
		for _, group := range rowGroup.FindAllStringSubmatch(insert[2], -1) {
			values := strings.Split(group[1], ",")
			if position >= 0 && position < len(values) {
				if n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(values[position]), "$")); err == nil {
					ordinals[n] = true
				}
			}
		}
	}
	return ordinals
}

// encodeTaskQueueIDs turns the task_queue_id parameters of a statement into hex text.
func encodeTaskQueueIDs(query string, args []driver.NamedValue) []driver.NamedValue {
	ordinals := taskQueueParameters(query)
	if len(ordinals) == 0 {
		return args
	}
	encoded := make([]driver.NamedValue, len(args))
	copy(encoded, args)
	for i, arg := range encoded {
		if raw, ok := arg.Value.([]byte); ok && ordinals[arg.Ordinal] {
			encoded[i].Value = hex.EncodeToString(raw)
		}
	}
	return encoded
}

// decodedColumn turns one text column of each row back into the bytes upstream scans it into.
type decodedColumn struct {
	driver.Rows
	column int
	decode func(string) ([]byte, error)
}

func (r *decodedColumn) Next(dest []driver.Value) error {
	if err := r.Rows.Next(dest); err != nil {
		return err
	}
	var text string
	switch value := dest[r.column].(type) {
	case string:
		text = value
	case []byte:
		text = string(value)
	default:
		return nil // NULL
	}
	raw, err := r.decode(text)
	if err != nil {
		return err
	}
	dest[r.column] = raw
	return nil
}

func withDecodedColumn(rows driver.Rows, column string, decode func(string) ([]byte, error)) driver.Rows {
	for i, name := range rows.Columns() {
		if name == column {
			return &decodedColumn{Rows: rows, column: i, decode: decode}
		}
	}
	return rows
}

// decodeTaskQueueIDs decodes a task_queue_id result column from hex.
func decodeTaskQueueIDs(rows driver.Rows) driver.Rows {
	return withDecodedColumn(rows, "task_queue_id", func(text string) ([]byte, error) {
		raw, err := hex.DecodeString(text)
		if err != nil {
			return nil, fmt.Errorf("task_queue_id %q is not hex: not written by the dsql plugin", text)
		}
		return raw, nil
	})
}

// Ids the DSQL schema stores as UUID but upstream scans into a plain []byte (a Nexus endpoint's id, a
// cluster member's host id) come back from pgx as their 36-character text; they go back to 16 bytes.
var uuidColumns = map[string]string{"nexus_endpoints": "id", "cluster_membership": "host_id"}

func decodeUUIDColumns(query string, rows driver.Rows) driver.Rows {
	lower := strings.ToLower(normalized(query))
	for table, column := range uuidColumns {
		if strings.Contains(lower, "from "+table) {
			return withDecodedColumn(rows, column, func(text string) ([]byte, error) {
				raw, err := hex.DecodeString(strings.ReplaceAll(text, "-", ""))
				if err != nil || len(raw) != 16 {
					return nil, fmt.Errorf("%s.%s %q is not a UUID", table, column, text)
				}
				return raw, nil
			})
		}
	}
	return rows
}
