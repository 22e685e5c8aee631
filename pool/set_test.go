package pool_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
	"github.com/switchyard-proxy/switchyard/pool"
)

// Helpers for the tests of Set: set_limits_test.go (sizes, limits,
// queueing, login retry) and set_lifecycle_test.go (drain, reconnect,
// pause, timeouts, dead servers, Close).

var (
	idA = pool.ID{Member: "m1", Database: "db", User: "u"}
	idB = pool.ID{Member: "m1", Database: "db", User: "v"}
	idC = pool.ID{Member: "m1", Database: "db2", User: "u"}
	idD = pool.ID{Member: "m2", Database: "db", User: "u"}
)

func newSet(t *testing.T, f *fakePG, opts pool.Options) *pool.Set {
	s := pool.NewSet(opts, f.open)
	t.Cleanup(s.Close) // before f's servers are waited for
	return s
}

func get(t *testing.T, s *pool.Set, id pool.ID) *pool.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sv, err := s.Get(ctx, id, "addr")
	if err != nil {
		t.Fatalf("Get %v: %v", id, err)
	}
	t.Cleanup(func() { s.Put(sv, pool.Idle) }) // unless it was already
	return sv
}

func stat(s *pool.Set, id pool.ID) pool.Stats {
	for _, st := range s.Stats() {
		if st.ID == id {
			return st
		}
	}
	return pool.Stats{ID: id}
}

type result struct {
	sv  *pool.Server
	err error
}

// getQueued starts a Get that must wait and returns once it is queued.
func getQueued(t *testing.T, ctx context.Context, s *pool.Set, id pool.ID) <-chan result {
	t.Helper()
	before := stat(s, id).Waiting
	ch := make(chan result, 1)
	go func() {
		sv, err := s.Get(ctx, id, "addr")
		ch <- result{sv, err}
	}()
	testbed.Eventually(t, 5*time.Second, "the Get to queue", func() bool { return stat(s, id).Waiting == before+1 })
	return ch
}

func recv(t *testing.T, s *pool.Set, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		if r.sv != nil {
			t.Cleanup(func() { s.Put(r.sv, pool.Idle) })
		}
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("Get did not return")
		return result{}
	}
}

func pending(ch <-chan result) bool {
	select {
	case r := <-ch:
		if r.sv != nil {
			panic("unexpected server")
		}
		return false
	default:
		return true
	}
}
