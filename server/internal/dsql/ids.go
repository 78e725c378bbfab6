package dsql

import (
	"encoding/hex"
	"fmt"

	"go.temporal.io/server/common/primitives"
)

// Ids the DSQL schema cannot keep as upstream's PostgreSQL schema does, and how the overrides convert them.

// toHex is a task queue id as the DSQL schema keeps it. task_queue_id is a variable-length byte string
// (namespace id, queue name, type, partition) and a key column, which DSQL cannot make BYTEA: it is lower-case
// hex text, which keeps the byte order (ORDER BY and `>` scans page the same way). The ASCII bytes go to pgx,
// whose text codec writes a []byte to a VARCHAR parameter as it is. nil stays nil: upstream tells an absent
// filter by it.
func toHex(raw []byte) []byte {
	if raw == nil {
		return nil
	}
	encoded := make([]byte, hex.EncodedLen(len(raw)))
	hex.Encode(encoded, raw)
	return encoded
}

// fromHex is a task_queue_id as upstream wrote it.
func fromHex(text []byte) ([]byte, error) {
	if text == nil {
		return nil, nil
	}
	raw := make([]byte, hex.DecodedLen(len(text)))
	if _, err := hex.Decode(raw, text); err != nil {
		return nil, fmt.Errorf("dsql plugin: task_queue_id %q is not hex: not written by the dsql plugin", text)
	}
	return raw, nil
}

// fromUUIDText decodes an id the DSQL schema stores as UUID but upstream scans into plain bytes (a Nexus
// endpoint's, a cluster member's): it comes from pgx as its 36-character text, and goes back to 16 bytes.
func fromUUIDText(column string) func([]byte) ([]byte, error) {
	return func(text []byte) ([]byte, error) {
		id, err := primitives.ParseUUID(string(text))
		if err != nil {
			return nil, fmt.Errorf("dsql plugin: %s %q is not a UUID", column, text)
		}
		return id, nil
	}
}

// withIDs is a copy of rows with each one's id encoded (the caller's rows keep theirs).
func withIDs[Row any](rows []Row, id func(*Row) *[]byte, encode func([]byte) []byte) []Row {
	encoded := append([]Row(nil), rows...)
	for index := range encoded {
		field := id(&encoded[index])
		*field = encode(*field)
	}
	return encoded
}

// decodeIDs puts back, in place, the id of each row upstream read.
func decodeIDs[Row any](rows []Row, id func(*Row) *[]byte, decode func([]byte) ([]byte, error)) error {
	for index := range rows {
		field := id(&rows[index])
		var err error
		if *field, err = decode(*field); err != nil {
			return err
		}
	}
	return nil
}
