package pool_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
	"github.com/switchyard-proxy/switchyard/pool"
)

func TestDrain(t *testing.T) {
	f := newFake(t)
	s := newSet(t, f, pool.Options{Size: 1})
	busy := get(t, s, idA)
	s.Put(get(t, s, idB), pool.Idle)
	other := get(t, s, idD)
	ch := getQueued(t, t.Context(), s, idA)
	if n := s.Drain("m1"); n != 2 {
		t.Fatalf("Drain = %d, want 2", n)
	}
	if r := recv(t, s, ch); !errors.Is(r.err, pool.ErrDrained) {
		t.Fatalf("waiter: %v, want ErrDrained", r.err)
	}
	testbed.Eventually(t, 5*time.Second, "the idle server to close", func() bool { return stat(s, idB).Closed == 1 })
	if !busy.Lost() || other.Lost() {
		t.Fatalf("Lost: drained member %v, other member %v", busy.Lost(), other.Lost())
	}
	if err := busy.Exec(t.Context(), "SELECT 1"); err != nil { // still usable until Put
		t.Fatal(err)
	}
	s.Put(busy, pool.Idle)
	testbed.Eventually(t, 5*time.Second, "the lost server to close at Put", func() bool {
		st := stat(s, idA)
		return st.Closed == 1 && st.Idle == 0
	})
	s.Put(other, pool.Idle)
	if st := stat(s, idD); st.Idle != 1 {
		t.Fatalf("other member: %+v", st)
	}
	if sv := get(t, s, idA); sv.Lost() { // the member may come back
		t.Fatal("new server is lost")
	}
}

func TestReconnect(t *testing.T) {
	f := newFake(t)
	s := newSet(t, f, pool.Options{Size: 2})
	busy := get(t, s, idA)
	s.Put(get(t, s, idA), pool.Idle)
	s.Put(get(t, s, idD), pool.Idle)
	s.Reconnect("m1", "")
	testbed.Eventually(t, 5*time.Second, "the idle server to close", func() bool { return stat(s, idA).Closed == 1 })
	if busy.Lost() {
		t.Fatal("a reconnected server is not lost")
	}
	s.Put(busy, pool.Idle)
	testbed.Eventually(t, 5*time.Second, "the busy server to close at Put", func() bool { return stat(s, idA).Closed == 2 })
	if st := stat(s, idD); st.Idle != 1 || st.Closed != 0 {
		t.Fatalf("other member: %+v", st)
	}
	s.Reconnect("", "")
	testbed.Eventually(t, 5*time.Second, "every idle server to close", func() bool { return stat(s, idD).Closed == 1 })
	testbed.Eventually(t, 5*time.Second, "every fake server to end", func() bool { return f.live() == 0 })
}

func TestPauseResume(t *testing.T) {
	f := newFake(t)
	s := newSet(t, f, pool.Options{Size: 2})
	busy := get(t, s, idA)
	s.Put(get(t, s, idA), pool.Idle)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if err := s.Pause(ctx, ""); !errors.Is(err, context.DeadlineExceeded) { // paused, still waiting
		t.Fatalf("Pause with a server out: %v", err)
	}
	paused := make(chan error, 1)
	go func() { paused <- s.Pause(t.Context(), "") }()
	ch := getQueued(t, t.Context(), s, idA) // waits although a server is idle
	select {
	case err := <-paused:
		t.Fatalf("Pause returned %v with a server checked out", err)
	case <-time.After(20 * time.Millisecond):
	}
	s.Put(busy, pool.Idle)
	if err := <-paused; err != nil {
		t.Fatal(err)
	}
	if !pending(ch) {
		t.Fatal("Get served while paused")
	}
	ctx, cancel = context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if err := s.Pause(ctx, ""); err != nil { // nothing checked out: at once
		t.Fatal(err)
	}
	s.Resume("")
	r := recv(t, s, ch)
	if r.err != nil {
		t.Fatal(r.err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if err := s.Pause(ctx, ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Pause with a server out: %v", err)
	}
	// Paused, a Get gives up after query_wait_timeout and says why.
	s2 := newSet(t, f, pool.Options{QueryWaitTimeout: 10 * time.Millisecond})
	s2.Pause(t.Context(), "")
	if _, err := s2.Get(t.Context(), idA, "addr"); err == nil || err.Error() !=
		`no server connection for pool "db/u" on member m1 within query_wait_timeout (0.01s): pool is paused` {
		t.Fatalf("paused Get: %v", err)
	}
	s.Resume("")
	s.Put(r.sv, pool.Idle)
}

func TestIdleTimeoutAndLifetime(t *testing.T) {
	f := newFake(t)
	s := newSet(t, f, pool.Options{Size: 2, IdleTimeout: 40 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	busy := get(t, s, idA)
	s.Put(get(t, s, idA), pool.Idle)
	testbed.Eventually(t, 5*time.Second, "the idle server to time out", func() bool { return stat(s, idA).Closed == 1 })
	time.Sleep(100 * time.Millisecond) // well past the timeout: the busy one stays
	if st := stat(s, idA); st.Active != 1 || st.Closed != 1 {
		t.Fatalf("stats %+v: a busy server was closed", st)
	}
	s.Put(busy, pool.Idle)
	// Once its last server is closed, the pool (and its counters) may go:
	// count the fake's open servers instead.
	testbed.Eventually(t, 5*time.Second, "it to time out once idle", func() bool { return f.live() == 0 })

	s2 := newSet(t, f, pool.Options{Size: 2, Lifetime: 40 * time.Millisecond})
	ctx2, cancel2 := context.WithCancel(t.Context())
	done2 := make(chan struct{})
	go func() { s2.Run(ctx2); close(done2) }()
	defer func() { cancel2(); <-done2 }()
	old := get(t, s2, idA)
	s2.Put(get(t, s2, idA), pool.Idle)
	testbed.Eventually(t, 5*time.Second, "the idle server past its lifetime to close", func() bool { return stat(s2, idA).Closed == 1 })
	if st := stat(s2, idA); st.Active != 1 {
		t.Fatalf("stats %+v: a busy server was closed", st)
	}
	s2.Put(old, pool.Idle) // past its lifetime: closed at Put
	testbed.Eventually(t, 5*time.Second, "the old server to close at Put", func() bool { return f.live() == 0 })
}

func TestMinSize(t *testing.T) {
	f := newFake(t)
	s := newSet(t, f, pool.Options{Size: 5, MinSize: 3, IdleTimeout: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	s.Put(get(t, s, idA), pool.Idle)
	testbed.Eventually(t, 5*time.Second, "min_pool_size servers", func() bool { return stat(s, idA).Idle == 3 })
	time.Sleep(60 * time.Millisecond) // past the idle timeout: min_pool_size stays
	if st := stat(s, idA); st.Idle != 3 || st.Closed != 0 {
		t.Fatalf("stats %+v", st)
	}
	if st := stat(s, idD); st.Opened != 0 {
		t.Fatalf("an unused pool was opened: %+v", st)
	}
}

func TestDeadIdleServer(t *testing.T) {
	f := newFake(t)
	s := newSet(t, f, pool.Options{Size: 1})
	sv := get(t, s, idA)
	pid := sv.Key.PID
	s.Put(sv, pool.Idle)
	f.kill(pid)
	sv = get(t, s, idA)
	if sv.Key.PID == pid {
		t.Fatal("a dead server was handed out")
	}
	if err := sv.Exec(t.Context(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	s.Put(sv, pool.Idle)
	// Within server_check_delay the socket is still checked.
	s2 := newSet(t, f, pool.Options{Size: 1, CheckDelay: time.Hour, CheckQuery: "SELECT 1"})
	sv = get(t, s2, idA)
	s2.Put(sv, pool.Idle)
	if again := get(t, s2, idA); again != sv {
		t.Fatal("server not reused")
	}
	s2.Put(sv, pool.Idle)
	f.kill(sv.Key.PID)
	if again := get(t, s2, idA); again == sv {
		t.Fatal("a dead server was handed out within server_check_delay")
	}
}

func TestClose(t *testing.T) {
	f := newFake(t)
	s := pool.NewSet(pool.Options{Size: 1}, f.open)
	busy := get(t, s, idA)
	s.Put(get(t, s, idB), pool.Idle)
	ch := getQueued(t, t.Context(), s, idA)
	s.Close()
	if r := recv(t, s, ch); !errors.Is(r.err, pool.ErrClosed) {
		t.Fatalf("waiter: %v", r.err)
	}
	if _, err := s.Get(t.Context(), idB, "addr"); !errors.Is(err, pool.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if stat(s, idB).Closed != 1 {
		t.Fatal("idle server not closed by Close")
	}
	s.Put(busy, pool.Idle)
	if st := stat(s, idA); st.Closed != 1 || st.Idle != 0 {
		t.Fatalf("busy server after Close and Put: %+v", st)
	}
	if f.live() != 0 {
		t.Fatalf("%d fake servers still open", f.live())
	}
}
