package queue

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	gojson "github.com/goccy/go-json"

	"github.com/sluice-mta/sluice/core/mail"
)

// Key prefixes; see the package comment.
const (
	prefixMsg   = "m/"
	prefixBody  = "b/"
	prefixSched = "s/"
	prefixLease = "l/"
)

func msgKey(id string) []byte   { return []byte(prefixMsg + id) }
func bodyKey(id string) []byte  { return []byte(prefixBody + id) }
func leaseKey(id string) []byte { return []byte(prefixLease + id) }

// schedKey is the schedule entry for id due at t: ordering keys orders by
// due time, then by ID.
func schedKey(t time.Time, id string) []byte {
	k := make([]byte, len(prefixSched)+8+len(id))
	copy(k, prefixSched)
	binary.BigEndian.PutUint64(k[len(prefixSched):], dueNanos(t))
	copy(k[len(prefixSched)+8:], id)
	return k
}

// parseSchedKey splits a schedule key into its due time and ID.
func parseSchedKey(k []byte) (time.Time, string, bool) {
	if len(k) < len(prefixSched)+8 || string(k[:len(prefixSched)]) != prefixSched {
		return time.Time{}, "", false
	}
	n := binary.BigEndian.Uint64(k[len(prefixSched):])
	return time.Unix(0, int64(n)), string(k[len(prefixSched)+8:]), true
}

// dueNanos clamps t to the range a schedule key can hold.
func dueNanos(t time.Time) uint64 {
	n := t.UnixNano()
	if n < 0 {
		return 0
	}
	return uint64(n)
}

// getEnvelope reads and decodes the envelope of id.
func getEnvelope(txn *badger.Txn, id string) (*mail.Envelope, error) {
	item, err := txn.Get(msgKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	env := new(mail.Envelope)
	err = item.Value(func(v []byte) error { return decodeEnvelope(v, env) })
	if err != nil {
		return nil, fmt.Errorf("decode envelope %s: %w", id, err)
	}
	return env, nil
}

// getBody reads a copy of the message bytes of id (ErrNotFound when they
// are gone).
func getBody(txn *badger.Txn, id string) ([]byte, error) {
	item, err := txn.Get(bodyKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read body of %s: %w", id, err)
	}
	body, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("read body of %s: %w", id, err)
	}
	return body, nil
}

// decodeEnvelope decodes a stored envelope into env. Envelopes are
// written by encoding/json (putEnvelope) and read with goccy/go-json, which
// decodes them the same way about five times faster
// (BenchmarkEnvelopeDecode): a scheduled message's envelope is decoded by
// its lease and again when its attempt is recorded (one leased at enqueue
// and unchanged since, not at all: handoff.go), and `queue stats` reads
// every one.
// TestDecodeEnvelopeAsEncodingJSON and FuzzDecodeEnvelope hold it to
// encoding/json.
func decodeEnvelope(v []byte, env *mail.Envelope) error { return gojson.Unmarshal(v, env) }

// putEnvelope encodes and stores env, and moves its listing index entries
// from was (ixEntries of env as it was read, before any change; nil for a
// new message) to what env now holds.
func putEnvelope(txn *badger.Txn, was []ixEntry, env *mail.Envelope) error {
	_, err := putEnvelopeEnc(txn, was, env)
	return err
}

// putEnvelopeEnc is putEnvelope, returning the envelope's encoding.
func putEnvelopeEnc(txn *badger.Txn, was []ixEntry, env *mail.Envelope) ([]byte, error) {
	b, err := setEnvelope(txn, env)
	if err != nil {
		return nil, err
	}
	return b, writeIndex(txn, was, ixEntries(env))
}

// setEnvelope encodes and stores env without its index entries (a
// message leased at enqueue: index.go), returning the encoding.
func setEnvelope(txn *badger.Txn, env *mail.Envelope) ([]byte, error) {
	b, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	return b, txn.Set(msgKey(env.ID), b)
}

// deleteMessage removes every record of the message whose envelope is env,
// stored with index entries was.
func deleteMessage(txn *badger.Txn, was []ixEntry, env *mail.Envelope) error {
	if err := txn.Delete(schedKey(env.NextAttempt, env.ID)); err != nil {
		return err
	}
	return deleteLeased(txn, was, env)
}

// deleteLeased is deleteMessage for a leased message that has no schedule
// entry.
func deleteLeased(txn *badger.Txn, was []ixEntry, env *mail.Envelope) error {
	for _, k := range [][]byte{msgKey(env.ID), bodyKey(env.ID), leaseKey(env.ID)} {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return writeIndex(txn, was, nil)
}

// idGen makes queue IDs: 12 base-36 digits of a strictly increasing
// nanosecond timestamp followed by 4 random base-36 digits, so IDs sort by
// arrival and stay unique across restarts even if the clock steps back.
type idGen struct {
	mu   sync.Mutex
	last int64
}

const idTimeDigits, idRandDigits = 12, 4

// idRandSpace is how many values idRandDigits base-36 digits hold.
const idRandSpace = 36 * 36 * 36 * 36

func (g *idGen) next(now time.Time) string {
	n := now.UnixNano()
	g.mu.Lock()
	if n <= g.last {
		n = g.last + 1
	}
	g.last = n
	g.mu.Unlock()
	if n < 0 {
		n = 0
	}
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		r = [4]byte{}
	}
	// Formatted in place: one allocation, the string (every message
	// takes an ID).
	b := make([]byte, 0, 2*idTimeDigits)
	b = appendBase36(b, n, idTimeDigits)
	b = appendBase36(b, int64(binary.BigEndian.Uint32(r[:])%idRandSpace), idRandDigits)
	return string(b)
}

// appendBase36 appends n (not negative) to b in upper-case base 36,
// zero-padded to width digits.
func appendBase36(b []byte, n int64, width int) []byte {
	var buf [16]byte // an int64 has at most 13 base-36 digits
	d := strconv.AppendInt(buf[:0], n, 36)
	for range width - len(d) {
		b = append(b, '0')
	}
	for _, c := range d {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}
