package pool_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/pool"
)

func TestFIFO(t *testing.T) {
	f := newFake(t)
	s := newSet(t, f, pool.Options{Size: 1})
	sv := get(t, s, idA)
	var chans []<-chan result
	for range 5 {
		chans = append(chans, getQueued(t, t.Context(), s, idA))
	}
	for i, ch := range chans {
		s.Put(sv, pool.Idle)
		r := recv(t, s, ch)
		if r.err != nil {
			t.Fatalf("waiter %d: %v", i, r.err)
		}
		for _, later := range chans[i+1:] {
			if !pending(later) {
				t.Fatalf("a later waiter than %d was served", i)
			}
		}
		sv = r.sv
	}
	s.Put(sv, pool.Idle)
	if st := stat(s, idA); st.Idle != 1 || st.Opened != 1 || st.Waiting != 0 {
		t.Fatalf("stats %+v, want one idle server, opened once", st)
	}
}

func TestSizeAndExhausted(t *testing.T) {
	f := newFake(t)
	s := newSet(t, f, pool.Options{Size: 2, QueryWaitTimeout: 50 * time.Millisecond})
	get(t, s, idA)
	get(t, s, idA)
	start := time.Now()
	_, err := s.Get(t.Context(), idA, "addr")
	var ex *pool.ExhaustedError
	if !errors.As(err, &ex) {
		t.Fatalf("err %v, want ExhaustedError", err)
	}
	if el := time.Since(start); el < 50*time.Millisecond || el > 2*time.Second {
		t.Fatalf("gave up after %s", el)
	}
	want := `no server connection for pool "db/u" on member m1 within query_wait_timeout (0.05s): all 2 in use (default_pool_size = 2)`
	if err.Error() != want {
		t.Fatalf("error\n%s\nwant\n%s", err, want)
	}
	if f.calls() != 2 || stat(s, idA).Waiting != 0 {
		t.Fatalf("opens %d, stats %+v", f.calls(), stat(s, idA))
	}
	// The default size is 20.
	s2 := newSet(t, f, pool.Options{QueryWaitTimeout: 20 * time.Millisecond})
	for range 20 {
		get(t, s2, idA)
	}
	if _, err := s2.Get(t.Context(), idA, "addr"); !errors.As(err, &ex) || ex.Limit != "default_pool_size = 20" {
		t.Fatalf("21st Get: %v", err)
	}
}

func TestReserve(t *testing.T) {
	f := newFake(t)
	s := newSet(t, f, pool.Options{Size: 1, ReserveSize: 1, ReserveTimeout: 50 * time.Millisecond,
		QueryWaitTimeout: 200 * time.Millisecond})
	get(t, s, idA)
	start := time.Now()
	get(t, s, idA) // from the reserve, after 50ms
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Fatalf("reserve used after %s, before reserve_pool_timeout", el)
	}
	_, err := s.Get(t.Context(), idA, "addr")
	want := `no server connection for pool "db/u" on member m1 within query_wait_timeout (0.2s): all 2 in use (default_pool_size = 1 + reserve_pool_size = 1)`
	if err == nil || err.Error() != want {
		t.Fatalf("third Get: %v\nwant %s", err, want)
	}
}

func TestMaxDBConns(t *testing.T) {
	f := newFake(t)
	s := newSet(t, f, pool.Options{Size: 5, MaxDBConns: 2, QueryWaitTimeout: 30 * time.Millisecond})
	a1, a2 := get(t, s, idA), get(t, s, idA)
	get(t, s, idD) // another member: its own count
	_, err := s.Get(t.Context(), idB, "addr")
	want := `no server connection for pool "db/v" on member m1 within query_wait_timeout (0.03s): all 2 in use (max_db_connections = 2)`
	if err == nil || err.Error() != want {
		t.Fatalf("Get over max_db_connections: %v\nwant %s", err, want)
	}
	get(t, s, idC) // another database

	// A server of another pool closing frees the slot for the waiter.
	s2 := newSet(t, f, pool.Options{Size: 5, MaxDBConns: 2})
	a1, a2 = get(t, s2, idA), get(t, s2, idA)
	ch := getQueued(t, t.Context(), s2, idB)
	s2.Put(a1, pool.Close)
	if r := recv(t, s2, ch); r.err != nil || r.sv.ID() != idB {
		t.Fatalf("waiter after a close: %+v", r)
	}
	// An idle server of another pool is closed to make room.
	ch = getQueued(t, t.Context(), s2, idB)
	s2.Put(a2, pool.Idle)
	if r := recv(t, s2, ch); r.err != nil || r.sv.ID() != idB {
		t.Fatalf("waiter after an idle server of another pool: %+v", r)
	}
	if st := stat(s2, idA); st.Idle+st.Active+st.Closing != 0 || st.Closed != 2 {
		t.Fatalf("pool A: %+v, want its idle server evicted", st)
	}
}

func TestMaxUserConns(t *testing.T) {
	f := newFake(t)
	s := newSet(t, f, pool.Options{Size: 5, MaxUserConns: 1, QueryWaitTimeout: 30 * time.Millisecond})
	a := get(t, s, idA)
	_, err := s.Get(t.Context(), idC, "addr")
	var ex *pool.ExhaustedError
	if !errors.As(err, &ex) || ex.Limit != "max_user_connections = 1" || ex.InUse != 1 {
		t.Fatalf("Get over max_user_connections: %v", err)
	}
	get(t, s, idB) // another user
	ch := getQueued(t, t.Context(), s, idC)
	s.Put(a, pool.Close)
	if r := recv(t, s, ch); r.err != nil {
		t.Fatal(r.err)
	}
}

func TestCancelWhileWaiting(t *testing.T) {
	f := newFake(t)
	s := newSet(t, f, pool.Options{Size: 1})
	sv := get(t, s, idA)
	ctx, cancel := context.WithCancel(t.Context())
	ch := getQueued(t, ctx, s, idA)
	cancel()
	if r := recv(t, s, ch); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("err %v, want canceled", r.err)
	}
	if st := stat(s, idA); st.Waiting != 0 {
		t.Fatalf("still waiting: %+v", st)
	}
	// Cancel racing a handover: whoever wins, no server is lost.
	for range 50 {
		ctx, cancel := context.WithCancel(t.Context())
		ch := getQueued(t, ctx, s, idA)
		go cancel()
		s.Put(sv, pool.Idle)
		if r := recv(t, s, ch); r.err == nil {
			sv = r.sv
		} else {
			sv = get(t, s, idA)
		}
	}
	s.Put(sv, pool.Idle)
	if st := stat(s, idA); st.Idle != 1 || st.Active != 0 || st.Opened != 1 {
		t.Fatalf("stats %+v, want the one server idle", st)
	}
	// A Get cancelled while its server is being opened gives the slot back.
	s2 := newSet(t, f, pool.Options{Size: 1})
	f.mu.Lock()
	f.gate = make(chan struct{})
	f.mu.Unlock()
	ctx, cancel = context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := s2.Get(ctx, idA, "addr"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	f.mu.Lock()
	f.gate = nil
	f.mu.Unlock()
	s2.Put(get(t, s2, idA), pool.Idle)
}

func TestLoginRetry(t *testing.T) {
	f := newFake(t)
	s := newSet(t, f, pool.Options{LoginRetry: time.Hour})
	rejected := &pool.ServerError{Code: "28P01", Message: `password authentication failed for user "u"`}
	f.setFail(rejected)
	for i := range 3 {
		if _, err := s.Get(t.Context(), idA, "addr"); !errors.Is(err, rejected) {
			t.Fatalf("Get %d: %v", i, err)
		}
	}
	if f.calls() != 1 {
		t.Fatalf("%d opens within server_login_retry, want 1", f.calls())
	}
	f.setFail(nil)
	get(t, s, idB) // another pool is not affected

	s2 := newSet(t, f, pool.Options{LoginRetry: time.Hour})
	before := f.calls()
	for _, err := range []error{&net.OpError{Op: "dial", Err: errors.New("connection refused")},
		&pool.ServerError{Code: "57P03", Message: "the database system is starting up"}} {
		f.setFail(err)
		s2.Get(t.Context(), idA, "addr")
		s2.Get(t.Context(), idA, "addr")
	}
	f.setFail(nil)
	get(t, s2, idA)
	if got := f.calls() - before; got != 5 {
		t.Fatalf("%d opens, want 5: transient errors are not remembered", got)
	}
}
