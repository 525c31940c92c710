package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/mail"
)

// The listing index: keys under prefixIndex that `sluice queue ls` seeks to
// instead of reading every envelope (RATIONALE.md "The queue listing
// seeks"). A message has one entry for its state, one for its sender and
// one for each destination domain of its pending recipients:
//
//	x/s<len><state><id>    (no value)
//	x/f<len><sender><id>   (no value; the sender as mail.Key, "" for <>)
//	x/d<len><domain><id>   the pending recipients there (ixAddrs)
//
// <len> is the field's length as a uvarint, so a field never runs into the
// ID. Entries are written in the transaction that writes the envelope, so
// the two never disagree; a listing still checks every envelope it returns.
// x/v marks a database whose index is complete (rebuildIndex).
const prefixIndex = "x/"

// Index kinds: the byte after prefixIndex.
const (
	ixState  = 's'
	ixSender = 'f'
	ixDomain = 'd'
)

// indexVersion is the value of indexDoneKey once every envelope has its
// entries.
const indexVersion = "1"

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
	case ixState, ixSender, ixDomain:
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

// ixEntry is one index key and its value.
type ixEntry struct{ key, val []byte }

// ixEntries are the index entries of env as stored, sorted by key: its
// destination domains (ixDomain sorts first), sender, state. Their keys
// and values share one allocation: this runs for every envelope written.
func ixEntries(env *mail.Envelope) []ixEntry {
	type addr struct{ domain, key string }
	var small [4]addr
	addrs := small[:0]
	for _, r := range env.Pending() {
		key := mail.Key(r.Addr)
		d := mail.Domain(r.Addr)
		addrs = append(addrs, addr{d, key})
		// A filter's address is compared as its key, and its domain
		// looked up as the key's: the two differ only for odd domains
		// ("a@b.." loses one dot more).
		if kd := mail.Domain(key); kd != d {
			addrs = append(addrs, addr{kd, key})
		}
	}
	state, sender := State(env), mail.Key(env.From)
	const perKey = len(prefixIndex) + 1 + binary.MaxVarintLen64
	size := 2*(perKey+len(env.ID)) + len(state) + len(sender)
	for _, a := range addrs {
		size += perKey + len(env.ID) + len(a.domain) + binary.MaxVarintLen64 + len(a.key)
	}
	buf := make([]byte, 0, size) // never grown: the slices below stay put
	key := func(kind byte, field string) []byte {
		start := len(buf)
		buf = append(buf, prefixIndex...)
		buf = append(buf, kind)
		buf = binary.AppendUvarint(buf, uint64(len(field)))
		buf = append(buf, field...)
		buf = append(buf, env.ID...)
		return buf[start:len(buf):len(buf)]
	}
	out := make([]ixEntry, 0, len(addrs)+2)
	for i, a := range addrs {
		if slices.ContainsFunc(addrs[:i], func(b addr) bool { return b.domain == a.domain }) {
			continue // its entry is written
		}
		k := key(ixDomain, a.domain)
		start := len(buf)
		for _, b := range addrs[i:] {
			if b.domain == a.domain {
				buf = appendIxAddr(buf, b.key)
			}
		}
		out = append(out, ixEntry{key: k, val: buf[start:len(buf):len(buf)]})
	}
	if len(out) > 1 {
		slices.SortFunc(out, func(a, b ixEntry) int { return bytes.Compare(a.key, b.key) })
	}
	return append(out, ixEntry{key: key(ixSender, sender)}, ixEntry{key: key(ixState, state)})
}

// appendIxAddr appends address key to a domain entry's value: each
// address as a uvarint length and its bytes.
func appendIxAddr(v []byte, key string) []byte {
	v = binary.AppendUvarint(v, uint64(len(key)))
	return append(v, key...)
}

// ixHasAddr reports whether a domain entry's value v holds address key. A
// value it cannot read holds nothing.
func ixHasAddr(v []byte, key string) bool {
	for len(v) > 0 {
		n, w := binary.Uvarint(v)
		if w <= 0 || n > uint64(len(v)-w) {
			return false
		}
		if string(v[w:w+int(n)]) == key {
			return true
		}
		v = v[w+int(n):]
	}
	return false
}

// writeIndex changes the stored index entries was (nil for a new message)
// to now, both sorted by key: it deletes what is gone and sets what is new
// or changed, and writes nothing for an entry that stays.
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
			if err := txn.Set(now[j].key, now[j].val); err != nil {
				return err
			}
			j++
		default:
			if !bytes.Equal(was[i].val, now[j].val) {
				if err := txn.Set(now[j].key, now[j].val); err != nil {
					return err
				}
			}
			i++
			j++
		}
	}
	return nil
}

// indexReady reports whether the listing may seek the index: every
// envelope has its entries.
func (q *Queue) indexReady() bool { return q.indexed.Load() && !q.opts.listScan }

// openIndex sets the index up when the queue opens: a database that has
// the marker is ready; an empty one gets the marker; one written by an
// older Sluice (envelopes without entries) is indexed in the background,
// the listing reading envelopes until that is done.
func (q *Queue) openIndex(ctx context.Context) error {
	var done, empty bool
	err := q.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(indexDoneKey)
		switch {
		case err == nil:
			return item.Value(func(v []byte) error { done = string(v) == indexVersion; return nil })
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

// rebuildIndex writes the entries of every envelope, a batch at a time,
// then the marker. A writer that changes an envelope meanwhile keeps its
// entries in step as always; a batch that read an envelope changed since
// conflicts and runs again.
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
				if err := writeIndex(txn, nil, ixEntries(env)); err != nil {
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
	q.log.Info("queue: indexed the queue for listing", "messages", n)
	return nil
}

// stopIndex stops a rebuild still running and waits for it.
func (q *Queue) stopIndex() {
	if q.ixStop != nil {
		q.ixStop()
		<-q.ixDone
	}
}
