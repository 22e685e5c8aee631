package auth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeDB answers auth_query from a map, counting queries; gate, when
// set, holds every query until closed.
type fakeDB struct {
	mu      sync.Mutex
	rows    map[string]string // a "" value is a NULL secret
	calls   atomic.Int32
	gate    chan struct{}
	started chan struct{}
	err     error
}

func (db *fakeDB) query(ctx context.Context, user string) (string, bool, error) {
	db.calls.Add(1)
	if db.started != nil {
		db.started <- struct{}{}
	}
	if db.gate != nil {
		select {
		case <-db.gate:
		case <-ctx.Done():
			return "", false, ctx.Err()
		}
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.err != nil {
		return "", false, db.err
	}
	s, ok := db.rows[user]
	return s, ok, nil
}

func TestStoreLookup(t *testing.T) {
	db := &fakeDB{rows: map[string]string{"q": "qpass", "expired": "", "f": "from-db"}}
	s := NewStore(map[string]string{"f": "from-file", "t": ""}, db.query, 30*time.Second)
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	ctx := context.Background()
	check := func(user, kind string, found bool) {
		t.Helper()
		sec, ok, err := s.Lookup(ctx, user)
		if err != nil || ok != found || sec.Kind() != kind {
			t.Fatalf("%s: %v %v %v, want %s %v", user, sec, ok, err, kind, found)
		}
	}
	check("f", "plain", true) // the file first
	check("t", "none", true)  // in the file with an empty secret (trust)
	check("q", "plain", true)
	check("expired", "none", false)
	check("nobody", "none", false)
	if n := db.calls.Load(); n != 3 {
		t.Fatalf("%d queries", n)
	}
	// Answers, positive and negative, are cached until the TTL passes.
	db.mu.Lock()
	db.rows["nobody"] = "md553f48b7c4b76a86ce72276c5755f217d"
	db.mu.Unlock()
	check("q", "plain", true)
	check("nobody", "none", false)
	if n := db.calls.Load(); n != 3 {
		t.Fatalf("%d queries", n)
	}
	now = now.Add(31 * time.Second)
	check("nobody", "md5", true)
	// Reload.
	s.SetFile(map[string]string{"q": pencilSCRAM})
	check("q", "scram-sha-256", true)
	check("f", "plain", true)
	if sec, _, _ := s.Lookup(ctx, "f"); sec.Password != "from-db" {
		t.Fatal("f should now come from auth_query")
	}
	// Errors are returned, not cached.
	db.err = errors.New("db down")
	now = now.Add(time.Minute)
	if _, _, err := s.Lookup(ctx, "z"); err == nil {
		t.Fatal("no error")
	}
	db.err = nil
	check("z", "none", false)
	// Without auth_query, only the file.
	s2 := NewStore(map[string]string{"a": "b"}, nil, time.Second)
	if _, ok, err := s2.Lookup(ctx, "q"); ok || err != nil {
		t.Fatal(ok, err)
	}
}

func TestStoreSharesOneQuery(t *testing.T) {
	db := &fakeDB{rows: map[string]string{"q": "p"}, gate: make(chan struct{}), started: make(chan struct{}, 100)}
	s := NewStore(nil, db.query, 0) // no caching: sharing still happens
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if sec, ok, err := s.Lookup(context.Background(), "q"); !ok || err != nil || sec.Password != "p" {
				t.Error(sec, ok, err)
			}
		}()
	}
	<-db.started
	time.Sleep(50 * time.Millisecond) // let the others queue behind the first
	close(db.gate)
	wg.Wait()
	if n := db.calls.Load(); n < 1 || n > 2 {
		t.Fatalf("%d queries for 20 concurrent lookups", n)
	}
}

// A waiter whose leader gave up (its context ended) asks again itself.
func TestStoreLeaderCanceled(t *testing.T) {
	db := &fakeDB{rows: map[string]string{"q": "p"}, gate: make(chan struct{}), started: make(chan struct{}, 100)}
	s := NewStore(nil, db.query, time.Minute)
	leaderCtx, cancel := context.WithCancel(context.Background())
	leaderDone := make(chan error)
	go func() { _, _, err := s.Lookup(leaderCtx, "q"); leaderDone <- err }()
	<-db.started
	waiter := make(chan error)
	go func() {
		sec, ok, err := s.Lookup(context.Background(), "q")
		if err == nil && (!ok || sec.Password != "p") {
			err = errors.New("wrong answer")
		}
		waiter <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-leaderDone; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	<-db.started // the waiter's own query
	close(db.gate)
	if err := <-waiter; err != nil {
		t.Fatal(err)
	}
}

func TestStoreClientKey(t *testing.T) {
	sec := ParseSecret(pencilSCRAM)
	s := NewStore(map[string]string{"u": pencilSCRAM}, nil, 0)
	ck, _, _ := saltedKeys("pencil", sec.SCRAM.Salt, sec.SCRAM.Iterations)
	s.SaveClientKey("u", sec, ck[:5]) // not this secret's key: ignored
	if got, _, _ := s.Lookup(context.Background(), "u"); got.ClientKey != nil {
		t.Fatal("kept a wrong key")
	}
	s.SaveClientKey("u", sec, ck)
	got, _, _ := s.Lookup(context.Background(), "u")
	if string(got.ClientKey) != string(ck) {
		t.Fatal("key not returned")
	}
	// The secret changes: the key is forgotten.
	other, _ := NewSCRAMSecret("pencil", 0)
	s.SetFile(map[string]string{"u": other.Encode()})
	if got, _, _ := s.Lookup(context.Background(), "u"); got.ClientKey != nil {
		t.Fatal("key kept across a secret change")
	}
	s.SetFile(map[string]string{"u": pencilSCRAM})
	if got, _, _ := s.Lookup(context.Background(), "u"); got.ClientKey != nil {
		t.Fatal("key came back")
	}
}
