package dsql

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"strings"

	"go.temporal.io/server/common/metrics"
	"go.temporal.io/server/common/primitives"
)

// DSQL refuses a column value over 1 MiB and a row over 2 MiB, while Temporal keeps a batch of history events,
// a buffered event or an activity's heartbeat details as one value of up to several MiB. Such a value is
// stored in pieces in value_chunks (the plugin's table in the DSQL schema), written in the same transaction
// as its row; the row keeps a short header in its data column and a marked encoding, and reads put the value
// back whole before upstream's code sees it. Values up to chunkSize stay in their row as they are.

// chunkSize is under DSQL's 1 MiB column limit with room for what the limit may count besides the bytes.
const chunkSize = 1_000_000

// chunkedPrefix marks a chunked row's encoding (the column holds 16 characters: upstream's longest is 6).
const chunkedPrefix = "chunks:"

// The tables whose values may be chunked, as value_chunks.kind.
type chunkKind int16

const (
	historyNodeChunks   chunkKind = 1 // owner: tree, branch; item: node id; group: transaction id
	bufferedEventChunks chunkKind = 2 // owner: namespace, run; item: 0; group: random
	activityInfoChunks  chunkKind = 3 // owner: namespace, run; item: scheduled event id; group: random
)

const chunkHeaderSize = 24

func (k chunkKind) String() string {
	return [...]string{"", "history_node", "buffered_events", "activity_info_maps"}[k]
}

// chunkRef names one chunked value: a row of value_chunks per piece, keyed by all of it and the piece's index.
type chunkRef struct {
	shard  int32
	kind   chunkKind
	ownerA primitives.UUID
	ownerB primitives.UUID
	item   int64
	group  int64
}

// chunkHeader is what a chunked row keeps in its data column: the value's length, its pieces, its CRC-32C,
// and the group its pieces are filed under. A read that finds pieces that do not add up to it fails.
type chunkHeader struct {
	length uint64
	pieces uint32
	crc    uint32
	group  int64
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (h chunkHeader) encode() []byte {
	out := make([]byte, chunkHeaderSize)
	binary.BigEndian.PutUint64(out[0:], h.length)
	binary.BigEndian.PutUint32(out[8:], h.pieces)
	binary.BigEndian.PutUint32(out[12:], h.crc)
	binary.BigEndian.PutUint64(out[16:], uint64(h.group))
	return out
}

func decodeChunkHeader(data []byte) (chunkHeader, error) {
	if len(data) != chunkHeaderSize {
		return chunkHeader{}, fmt.Errorf("dsql plugin: a chunked value's header has %d bytes, not %d", len(data), chunkHeaderSize)
	}
	return chunkHeader{
		length: binary.BigEndian.Uint64(data[0:]),
		pieces: binary.BigEndian.Uint32(data[8:]),
		crc:    binary.BigEndian.Uint32(data[12:]),
		group:  int64(binary.BigEndian.Uint64(data[16:])),
	}, nil
}

func needsChunks(data []byte) bool { return len(data) > chunkSize }

func isChunked(encoding string) bool { return strings.HasPrefix(encoding, chunkedPrefix) }

func randomGroup() int64 { return rand.Int64() }

const (
	insertChunkQuery = `INSERT INTO value_chunks (shard_id, kind, owner_a, owner_b, item, chunk_group, chunk, data) ` +
		`VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	ownerChunks       = `shard_id = $1 AND kind = $2 AND owner_a = $3 AND owner_b = $4`
	selectChunksQuery = `SELECT chunk, data FROM value_chunks WHERE ` + ownerChunks +
		` AND item = $5 AND chunk_group = $6 ORDER BY chunk`
	valueChunksKey = `shard_id, kind, owner_a, owner_b, item, chunk_group, chunk`
)

// The deletes of pieces: a whole branch's or run's may be more rows than DSQL deletes at once.
var (
	ownerPieces     = chunkRange(``)
	itemPieces      = chunkRange(` AND item = $5`)
	groupPieces     = chunkRange(` AND item = $5 AND chunk_group = $6`)
	itemsFromPieces = chunkRange(` AND item >= $5`)
	itemListPieces  = chunkRange(` AND item = ANY($5)`)
)

// chunkRange is a delete of an owner's pieces, narrowed by and.
func chunkRange(and string) keyRange {
	return keyRange{table: "value_chunks", key: valueChunksKey, where: ownerChunks + and}
}

// writeChunks files data's pieces under ref in the current transaction and returns the row's data and encoding.
func (t *tables) writeChunks(ctx context.Context, ref chunkRef, data []byte, encoding string) ([]byte, string, error) {
	if len(chunkedPrefix)+len(encoding) > 16 {
		return nil, "", fmt.Errorf("dsql plugin: encoding %q is too long to mark as chunked", encoding)
	}
	header := chunkHeader{length: uint64(len(data)), crc: crc32.Checksum(data, castagnoli), group: ref.group}
	for start := 0; start < len(data); start += chunkSize {
		piece := data[start:min(start+chunkSize, len(data))]
		if _, err := t.sql.ExecContext(ctx, insertChunkQuery, ref.shard, ref.kind, ref.ownerA, ref.ownerB, ref.item,
			ref.group, header.pieces, piece); err != nil {
			return nil, "", err
		}
		header.pieces++
	}
	t.recordChunks(ref.kind, "write", len(data), int(header.pieces))
	return header.encode(), chunkedPrefix + encoding, nil
}

// readChunks puts a chunked row's value back together: the value and its own encoding.
func (t *tables) readChunks(ctx context.Context, ref chunkRef, data []byte, encoding string) ([]byte, string, error) {
	header, err := decodeChunkHeader(data)
	if err != nil {
		return nil, "", err
	}
	ref.group = header.group
	var pieces []struct {
		Chunk int64  `db:"chunk"`
		Data  []byte `db:"data"`
	}
	if err := t.sql.SelectContext(ctx, &pieces, selectChunksQuery, ref.shard, ref.kind, ref.ownerA, ref.ownerB,
		ref.item, ref.group); err != nil {
		return nil, "", err
	}
	value := make([]byte, 0, header.length)
	for index, piece := range pieces {
		if piece.Chunk != int64(index) {
			break
		}
		value = append(value, piece.Data...)
	}
	if uint64(len(value)) != header.length || len(pieces) != int(header.pieces) ||
		crc32.Checksum(value, castagnoli) != header.crc {
		return nil, "", fmt.Errorf("dsql plugin: %s value (shard %d, item %d) is incomplete: %d of %d pieces, %d of "+
			"%d bytes or a different checksum (a concurrent delete, or damage)", ref.kind, ref.shard, ref.item,
			len(pieces), header.pieces, len(value), header.length)
	}
	t.recordChunks(ref.kind, "read", len(value), 1)
	return value, strings.TrimPrefix(encoding, chunkedPrefix), nil
}

// storedValue is where one row keeps its value and encoding, and the pieces it is filed under.
type storedValue struct {
	data     *[]byte
	encoding *string
	ref      chunkRef
}

// insertWithPieces inserts rows through upstream's insert; when a value is over chunkSize, in one transaction
// with its pieces, after clearing (if given) whatever an earlier value left under the same ref.
func insertWithPieces[Row any](ctx context.Context, t *tables, rows []Row, value func(*Row) storedValue,
	clear func(context.Context, *tables, chunkRef) error, insert func(*tables, []Row) (sql.Result, error),
) (sql.Result, error) {
	large := false
	for index := range rows {
		large = large || needsChunks(*value(&rows[index]).data)
	}
	if !large {
		return insert(t, rows)
	}
	var result sql.Result
	err := t.atomically(ctx, func(tx *tables) error {
		stored := append([]Row(nil), rows...) // the caller's rows keep their values
		for index := range stored {
			field := value(&stored[index])
			if !needsChunks(*field.data) {
				continue
			}
			if clear != nil {
				if err := clear(ctx, tx, field.ref); err != nil {
					return err
				}
			}
			var err error
			if *field.data, *field.encoding, err = tx.writeChunks(ctx, field.ref, *field.data, *field.encoding); err != nil {
				return err
			}
		}
		var err error
		result, err = insert(tx, stored)
		return err
	})
	return result, err
}

// selectWithPieces reads rows with upstream's select and puts back whole every value found in pieces. Outside a
// transaction, rows that hold pieces are read again with their pieces in one transaction: between a row and its
// pieces read alone, a replace or a delete could come.
func selectWithPieces[Row any](ctx context.Context, t *tables, selectRows func(*tables) ([]Row, error),
	value func(*Row) storedValue,
) ([]Row, error) {
	rows, err := selectRows(t)
	if err != nil {
		return nil, err
	}
	chunked := false
	for index := range rows {
		chunked = chunked || isChunked(*value(&rows[index]).encoding)
	}
	if !chunked {
		return rows, nil
	}
	if !t.alone {
		return rows, readPieces(ctx, t, rows, value)
	}
	err = t.atomically(ctx, func(tx *tables) error {
		if rows, err = selectRows(tx); err != nil {
			return err
		}
		return readPieces(ctx, tx, rows, value)
	})
	return rows, err
}

// readPieces puts back whole every value of rows that upstream's select found in pieces.
func readPieces[Row any](ctx context.Context, t *tables, rows []Row, value func(*Row) storedValue) error {
	for index := range rows {
		field := value(&rows[index])
		if !isChunked(*field.encoding) {
			continue
		}
		var err error
		if *field.data, *field.encoding, err = t.readChunks(ctx, field.ref, *field.data, *field.encoding); err != nil {
			return err
		}
	}
	return nil
}

// recordChunks counts a chunked value, its bytes and the statements its pieces took.
func (t *tables) recordChunks(kind chunkKind, operation string, size int, statements int) {
	if t.metrics == nil {
		return
	}
	tags := []metrics.Tag{metrics.StringTag("table", kind.String()), metrics.OperationTag(operation)}
	t.metrics.Counter(chunkedValuesMetric).Record(1, tags...)
	t.metrics.Counter(chunkedBytesMetric).Record(int64(size), tags...)
	t.metrics.Counter(chunkStatementsMetric).Record(int64(statements), tags...)
}
