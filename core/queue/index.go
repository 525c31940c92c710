package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/mail"
)

// The listing index: keys under prefixIndex that `sluice queue ls` seeks to
// instead of reading every envelope (RATIONALE.md "The queue listing
// seeks"). A message has one entry for its state, one for its sender, one
// for each destination domain of its pending recipients and one for each
// pending recipient:
//
//	x/s<len><state><id>    the state (StateQueued, …)
//	x/f<len><sender><id>   the sender as mail.Key, "" for <>
//	x/d<len><domain><id>   a pending recipient's domain
//	x/r<len><rcpt><id>     a pending recipient as mail.Key
//
// No entry has a value. <len> is the field's length as a uvarint, so a
// field never runs into the ID, and a field's entries are in ID order, as
// a listing pages. Entries are written in the transaction that writes the
// envelope, so the two never disagree; a listing still checks every
// envelope it returns. x/v marks a database whose index is complete and
// of which format (indexVersion; rebuildIndex).
//
// One kind of message has no entries: one leased at enqueue (handoff.go)
// and not yet out of that lease, which its lease says by having no value
// (storedEntries). Most are delivered and removed milliseconds later, so
// writing their entries at enqueue and deleting them at delivery cost
// two Badger writes an entry for nothing. Their entries are written when
// the message leaves the lease (deferred, held by a plugin, released at a
// stop, recovered at a start) or an administrator's operation writes its
// envelope while it keeps the lease (Hold: keepLease); and a
// listing that seeks the index also reads, in the same snapshot, the
// messages leased without entries (unindexedAfter: at most the places of
// ready and the workers). See RATIONALE.md "Queue: no index entries for a
// message leased at enqueue".
const prefixIndex = "x/"

// Index kinds: the byte after prefixIndex. Their order ('d' < 'f' < 'r' <
// 's') is the order of a message's entries (ixEntries).
const (
	ixDomain = 'd'
	ixSender = 'f'
	ixRcpt   = 'r'
	ixState  = 's'
)

// indexVersion is the value of indexDoneKey once every envelope has its
// entries in this format. "1" had no recipient entries and listed a
// domain entry's recipients in its value; a database marked "1" is
// brought up to date by rebuildIndex.
const indexVersion = "2"

// indexDoneKey marks a complete index.
var indexDoneKey = []byte(prefixIndex + "v")

// ixKey is the index key of kind for field and message id; with id "" it
// is the prefix of every entry of that field.
func ixKey(kind byte, field, id string) []byte {
	b := make([]byte, 0, len(prefixIndex)+1+binary.MaxVarintLen64+len(field)+len(id))
	b = append(b, prefixIndex...)
	b = append(b, kind)
	b = binary.AppendUvarint(b, uint64(len(field)))
	b = append(b, field...)
	return append(b, id...)
}

// parseIxKey splits an index key into kind, field and message ID; ok is
// false for anything ixKey does not make (the x/v marker among them).
func parseIxKey(k []byte) (kind byte, field, id string, ok bool) {
	rest, found := bytes.CutPrefix(k, []byte(prefixIndex))
	if !found || len(rest) < 2 {
		return 0, "", "", false
	}
	kind, rest = rest[0], rest[1:]
	switch kind {
	case ixState, ixSender, ixDomain, ixRcpt:
	default:
		return 0, "", "", false
	}
	n, w := binary.Uvarint(rest)
	if w <= 0 || w != len(binary.AppendUvarint(nil, n)) || n > uint64(len(rest)-w) {
		return 0, "", "", false // not as ixKey writes it
	}
	rest = rest[w:]
	return kind, string(rest[:n]), string(rest[n:]), true
}

// ixEntry is one index entry: its key (entries have no value).
type ixEntry struct{ key []byte }

// ixEntries are the index entries of env as stored, sorted by key: the
// destination domains of its pending recipients, its sender, its pending
// recipients, its state. Their keys share one allocation: this runs for
// every envelope written.
func ixEntries(env *mail.Envelope) []ixEntry {
	type addr struct{ domain, key string }
	var small [4]addr
	addrs := small[:0]
	for _, r := range env.Pending() {
		addrs = append(addrs, addr{mail.Domain(r.Addr), mail.Key(r.Addr)})
	}
	state, sender := State(env), mail.Key(env.From)
	const perKey = len(prefixIndex) + 1 + binary.MaxVarintLen64
	size := 2*(perKey+len(env.ID)) + len(state) + len(sender)
	for _, a := range addrs {
		size += 2*(perKey+len(env.ID)) + len(a.domain) + len(a.key)
	}
	buf := make([]byte, 0, size) // never grown: one allocation
	key := func(kind byte, field string) []byte {
		start := len(buf)
		buf = append(buf, prefixIndex...)
		buf = append(buf, kind)
		buf = binary.AppendUvarint(buf, uint64(len(field)))
		buf = append(buf, field...)
		buf = append(buf, env.ID...)
		return buf[start:len(buf):len(buf)]
	}
	out := make([]ixEntry, 0, 2*len(addrs)+2)
	for _, a := range addrs {
		out = append(out, ixEntry{key: key(ixDomain, a.domain)})
	}
	out = sortedSet(out)
	out = append(out, ixEntry{key: key(ixSender, sender)})
	n := len(out)
	for _, a := range addrs {
		out = append(out, ixEntry{key: key(ixRcpt, a.key)})
	}
	out = out[:n+len(sortedSet(out[n:]))]
	return append(out, ixEntry{key: key(ixState, state)})
}

// sortedSet sorts es by key and drops repeated keys, in place.
func sortedSet(es []ixEntry) []ixEntry {
	if len(es) < 2 {
		return es
	}
	cmp := func(a, b ixEntry) int { return bytes.Compare(a.key, b.key) }
	slices.SortFunc(es, cmp)
	return slices.CompactFunc(es, func(a, b ixEntry) bool { return cmp(a, b) == 0 })
}

// writeIndex changes the stored index entries was (nil for a new message)
// to now, both sorted by key: it deletes what is gone and sets what is
// new, and writes nothing for an entry that stays.
func writeIndex(txn *badger.Txn, was, now []ixEntry) error {
	i, j := 0, 0
	for i < len(was) || j < len(now) {
		c := 1
		switch {
		case i == len(was):
			c = 1
		case j == len(now):
			c = -1
		default:
			c = bytes.Compare(was[i].key, now[j].key)
		}
		switch {
		case c < 0:
			if err := txn.Delete(was[i].key); err != nil {
				return err
			}
			i++
		case c > 0:
			if err := txn.Set(now[j].key, nil); err != nil {
				return err
			}
			j++
		default:
			i++
			j++
		}
	}
	return nil
}

// leaseKind is what a message's lease says about its index entries.
type leaseKind int

const (
	// notLeased: no worker has the message; its entries are stored.
	notLeased leaseKind = iota
	// leasedIndexed: leased (by the scheduler, or at enqueue and indexed
	// since), its entries stored; the lease's value is the time it was
	// taken or indexed.
	leasedIndexed
	// leasedUnindexed: leased at enqueue without entries; the lease has
	// no value.
	leasedUnindexed
)

// indexedLease is the value of the lease of a message whose entries are
// stored, leased or indexed at now: never empty.
func indexedLease(now time.Time) []byte {
	b, _ := now.MarshalText()
	if len(b) == 0 {
		b = []byte{'0'}
	}
	return b
}

// storedEntries returns the index entries stored for env, as read in txn
// (before any change): ixEntries(env), or none while it is leased at
// enqueue without them; and what its lease is. It must run before the
// transaction deletes the lease.
func storedEntries(txn *badger.Txn, env *mail.Envelope) ([]ixEntry, leaseKind, error) {
	item, err := txn.Get(leaseKey(env.ID))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return ixEntries(env), notLeased, nil
	case err != nil:
		return nil, 0, err
	case item.ValueSize() == 0:
		return nil, leasedUnindexed, nil
	}
	return ixEntries(env), leasedIndexed, nil
}

// keepLease is for an operation that writes the envelope of message id,
// whose lease is lk (storedEntries), with putEnvelope and keeps its lease:
// a message leased at enqueue without entries gets them with that write
// (from none), and its lease says so from then on.
func keepLease(txn *badger.Txn, id string, lk leaseKind, now time.Time) error {
	if lk != leasedUnindexed {
		return nil
	}
	return txn.Set(leaseKey(id), indexedLease(now))
}

// unindexedAfter returns the IDs after after, in ID order, of the
// messages leased at enqueue without index entries, as txn sees them.
// They are at most the places of ready and the workers, so the listing
// that seeks the index reads each of their envelopes too.
func unindexedAfter(txn *badger.Txn, after string) []string {
	var ids []string
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixLease)})
	defer it.Close()
	if after == "" {
		it.Rewind()
	} else {
		it.Seek(append(leaseKey(after), 0))
	}
	for ; it.Valid(); it.Next() {
		if it.Item().ValueSize() == 0 {
			ids = append(ids, string(it.Item().Key()[len(prefixLease):]))
		}
	}
	return ids
}

// indexReady reports whether the listing may seek the index: every
// envelope has its entries.
func (q *Queue) indexReady() bool { return q.indexed.Load() && !q.opts.listScan }

// openIndex sets the index up when the queue opens: a database whose
// marker names this format is ready; an empty one gets the marker; one
// written by an older Sluice (envelopes without entries, or entries in an
// older format) is indexed in the background, the listing reading
// envelopes until that is done.
func (q *Queue) openIndex(ctx context.Context) error {
	var done, empty bool
	var format string // the marker's value: the complete index's format
	err := q.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(indexDoneKey)
		switch {
		case err == nil:
			return item.Value(func(v []byte) error { format = string(v); done = format == indexVersion; return nil })
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixMsg)})
		defer it.Close()
		it.Rewind()
		empty = !it.Valid()
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: read the listing index in %s: %w", q.opts.Dir, err)
	}
	if done {
		q.indexed.Store(true)
		return nil
	}
	if empty {
		if err := q.update(ctx, func(txn *badger.Txn) error { return txn.Set(indexDoneKey, []byte(indexVersion)) }); err != nil {
			return fmt.Errorf("queue: mark the listing index in %s: %w", q.opts.Dir, err)
		}
		q.indexed.Store(true)
		return nil
	}
	if format != "" {
		q.log.Info("queue: upgrading the listing index in the background; `sluice queue ls` reads every envelope until it is done", "from_format", format, "format", indexVersion)
	}
	ictx, cancel := context.WithCancel(context.Background())
	q.ixStop, q.ixDone = cancel, make(chan struct{})
	go func() {
		defer close(q.ixDone)
		if err := q.rebuildIndex(ictx); err != nil && ictx.Err() == nil {
			q.log.Error("queue: indexing the queue for listing failed; `sluice queue ls` reads every envelope until a restart indexes it", "err", err)
		}
	}()
	return nil
}

// rebuildIndex writes the entries of every envelope (but those of
// messages leased at enqueue without them), a batch at a time, then the
// marker. A writer that changes an envelope meanwhile keeps its
// entries in step as always; a batch that read an envelope changed since
// conflicts and runs again. On a database indexed in an older format
// (indexVersion "1") it is the upgrade: see reindex.
func (q *Queue) rebuildIndex(ctx context.Context) error {
	const batch = 256
	var after []byte
	n := 0
	for {
		var ids []string
		err := q.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixMsg)})
			defer it.Close()
			if after == nil {
				it.Rewind()
			} else {
				it.Seek(append(after, 0))
			}
			for ; it.Valid() && len(ids) < batch; it.Next() {
				after = it.Item().KeyCopy(after[:0])
				ids = append(ids, string(after[len(prefixMsg):]))
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			break
		}
		err = q.commit(ctx, func(txn *badger.Txn) error {
			for _, id := range ids {
				env, err := getEnvelope(txn, id)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				_, lk, err := storedEntries(txn, env)
				if err != nil {
					return err
				}
				if lk == leasedUnindexed {
					continue // without entries until it leaves its lease
				}
				if err := reindex(txn, env); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		n += len(ids)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if err := q.update(ctx, func(txn *badger.Txn) error { return txn.Set(indexDoneKey, []byte(indexVersion)) }); err != nil {
		return err
	}
	q.indexed.Store(true)
	q.log.Info("queue: indexed the queue for listing", "messages", n, "format", indexVersion)
	return nil
}

// reindex writes the index entries of env, stored or not, over whatever
// entries of env are stored: all of them are set, replacing a format-1
// domain entry's value (its recipients) with none, and the format-1 entry
// the new format has no counterpart for is deleted. That one is the domain
// of a recipient's key where it is not the recipient's domain ("w@c.test.."
// had entries for "c.test." and "c.test"): a filter by recipient used to
// look up that domain, and now seeks the recipient's own entry. Every
// other format-1 key is a format-2 key of the same envelope, so a writer
// that deletes or changes a message before the upgrade reaches it, from
// the entries the new format calls for, leaves nothing behind but such a
// domain entry (a stale entry costs a listing one envelope read, never a
// wrong line).
func reindex(txn *badger.Txn, env *mail.Envelope) error {
	now := ixEntries(env)
	for _, r := range env.Pending() {
		d := mail.Domain(mail.Key(r.Addr))
		if d == mail.Domain(r.Addr) {
			continue
		}
		k := ixKey(ixDomain, d, env.ID)
		if slices.ContainsFunc(now, func(e ixEntry) bool { return bytes.Equal(e.key, k) }) {
			continue
		}
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return writeIndex(txn, nil, now)
}

// stopIndex stops a rebuild still running and waits for it.
func (q *Queue) stopIndex() {
	if q.ixStop != nil {
		q.ixStop()
		<-q.ixDone
	}
}
