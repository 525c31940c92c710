package tlsrpt

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// Prefix is the key prefix of the counts in the queue's Badger database:
// "tlsrpt/<day>/<policy domain>" holds that day's DomainCounts as JSON.
const Prefix = "tlsrpt/"

// store keeps the counts in Badger. Its writes are ordinary commits, not
// the queue's synced ones: a crash may lose the last few seconds of
// counts, a clean stop loses none.
type store struct{ db *badger.DB }

func countsKey(day, domain string) []byte { return []byte(Prefix + day + "/" + domain) }

// txnBatch is how many domains one write transaction updates, well below
// Badger's transaction size limit.
const txnBatch = 256

// add merges each of counts into what the store holds for its day and
// domain.
func (s store) add(counts []*DomainCounts) error {
	for len(counts) > 0 {
		batch := counts[:min(txnBatch, len(counts))]
		counts = counts[len(batch):]
		var err error
		for range 10 { // another writer's commit (the sender's delete) conflicts
			if err = s.db.Update(func(txn *badger.Txn) error { return addTxn(txn, batch) }); !errors.Is(err, badger.ErrConflict) {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("tlsrpt: storing counts: %w", err)
		}
	}
	return nil
}

func addTxn(txn *badger.Txn, batch []*DomainCounts) error {
	for _, c := range batch {
		k := countsKey(c.Day, c.Domain)
		cur, err := getTxn(txn, k)
		if err != nil {
			return err
		}
		if cur == nil {
			cur = &DomainCounts{Day: c.Day, Domain: c.Domain}
		}
		cur.merge(c)
		b, err := json.Marshal(cur)
		if err != nil {
			return err
		}
		if err := txn.Set(k, b); err != nil {
			return err
		}
	}
	return nil
}

// getTxn reads one key's counts; nil when absent.
func getTxn(txn *badger.Txn, k []byte) (*DomainCounts, error) {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var c DomainCounts
	if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &c) }); err != nil {
		return nil, fmt.Errorf("tlsrpt: key %s: %w", k, err)
	}
	return &c, nil
}

// day lists the counts of one day, all domains or the one named (""
// for all), by domain.
func (s store) day(day, domain string) ([]*DomainCounts, error) {
	var out []*DomainCounts
	err := s.db.View(func(txn *badger.Txn) error {
		if domain != "" {
			c, err := getTxn(txn, countsKey(day, domain))
			if c != nil {
				out = append(out, c)
			}
			return err
		}
		prefix := []byte(Prefix + day + "/")
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			c, err := getTxn(txn, it.Item().KeyCopy(nil))
			if err != nil {
				return err
			}
			if c != nil {
				out = append(out, c)
			}
		}
		return nil
	})
	return out, err
}

// days lists the days the store holds counts of, oldest first.
func (s store) days() ([]string, error) {
	var out []string
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(Prefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); {
			day, _, ok := strings.Cut(strings.TrimPrefix(string(it.Item().Key()), Prefix), "/")
			if ok && !slices.Contains(out, day) {
				out = append(out, day)
			}
			// Skip the rest of this day: "/" + 1 is "0".
			it.Seek([]byte(Prefix + day + "0"))
		}
		return nil
	})
	return out, err
}

// remove deletes one day's counts of one domain.
func (s store) remove(day, domain string) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Delete(countsKey(day, domain)) })
}

// errConflict is Badger's answer to a commit that raced another.
var errConflict = badger.ErrConflict
