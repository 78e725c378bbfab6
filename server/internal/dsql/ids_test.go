package dsql

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"go.temporal.io/server/common/primitives"
)

func TestHexKeepsTaskQueueIDsAndTheirOrder(t *testing.T) {
	ids := [][]byte{{}, {0x00}, {0x00, 0xff}, {0x01}, {0x7f, 0x00}, {0x80}, {0xff, 0xff, 0x10}}
	for index, id := range ids {
		encoded := toHex(id)
		if strings.ToLower(string(encoded)) != string(encoded) {
			t.Errorf("%x: %q is not lower-case", id, encoded)
		}
		decoded, err := fromHex(encoded)
		if err != nil || !bytes.Equal(decoded, id) || decoded == nil {
			t.Errorf("%x: decoded %x (%v)", id, decoded, err)
		}
		if index > 0 && string(toHex(ids[index-1])) >= string(encoded) {
			t.Errorf("%x sorts after %x once in hex", ids[index-1], id)
		}
	}
	if toHex(nil) != nil {
		t.Error("an absent id must stay absent (nil)")
	}
	if decoded, err := fromHex(nil); decoded != nil || err != nil {
		t.Errorf("a NULL id decoded to %x (%v)", decoded, err)
	}
	if _, err := fromHex([]byte("zz")); err == nil || !strings.Contains(err.Error(), "task_queue_id") {
		t.Errorf("text that is not hex: %v, want an error naming the column", err)
	}
}

func TestUUIDTextComesBackAsItsBytes(t *testing.T) {
	id := primitives.NewUUID()
	decode := fromUUIDText("nexus_endpoints.id")
	if got, err := decode([]byte(id.String())); err != nil || !bytes.Equal(got, id) {
		t.Fatalf("%s decoded to %x (%v)", id, got, err)
	}
	if _, err := decode([]byte("not-a-uuid")); err == nil || !strings.Contains(err.Error(), "nexus_endpoints.id") {
		t.Fatalf("not a UUID: %v, want an error naming the column", err)
	}
}

func TestIDsAreConvertedRowByRow(t *testing.T) {
	type row struct{ id []byte }
	id := func(r *row) *[]byte { return &r.id }
	mine := []row{{[]byte{1}}, {nil}}
	encoded := withIDs(mine, id, toHex)
	if string(encoded[0].id) != "01" || encoded[1].id != nil || mine[0].id[0] != 1 {
		t.Fatalf("encoded %+v from %+v", encoded, mine)
	}
	if err := decodeIDs(encoded, id, fromHex); err != nil || !reflect.DeepEqual(encoded, mine) {
		t.Fatalf("decoded %+v (%v), want %+v", encoded, err, mine)
	}
}
