package pool

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Set is the server pools of one listener, one per ID, sharing the
// limits across them. All bookkeeping is under one lock; server I/O
// (opening, checking, resetting, closing) never is.
type Set struct {
	opts atomic.Pointer[Options] // replaced whole by SetOptions
	open Opener
	log  *slog.Logger

	mu        sync.Mutex
	pools     map[ID]*pool
	dbConns   map[scope]int
	userConns map[scope]int
	pausedAll bool            // PAUSE
	pausedDB  map[string]bool // PAUSE db
	closed    bool
	quiets    []quiet   // Pauses waiting for their servers to be checked in
	doomed    []*Server // to close once the lock is released

	closers sync.WaitGroup // closing goroutines; Close waits for them
}

// NewSet returns an empty set of pools whose servers open will open.
func NewSet(opts Options, open Opener) *Set {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Set{open: open, log: log, pools: map[ID]*pool{},
		dbConns: map[scope]int{}, userConns: map[scope]int{}, pausedDB: map[string]bool{}}
	s.opts.Store(&opts)
	return s
}

func (s *Set) o() *Options { return s.opts.Load() }

// SetOptions applies new settings (a reload): larger limits serve
// waiters at once; under smaller ones, servers over the pool size close
// as they are returned.
func (s *Set) SetOptions(opts Options) {
	opts.Logger = s.o().Logger
	s.opts.Store(&opts)
	s.mu.Lock()
	s.dispatch()
	s.unlock()
}

// Get checks out a server of pool id, whose member is at addr: an idle
// one (the most recently used), or a new one if the limits allow, or the
// next one freed, in the order the Gets came. It waits at most
// QueryWaitTimeout (then *ExhaustedError) and until ctx ends (then its
// cause). It may return the Opener's error, ErrDrained or ErrClosed. An
// idle server is checked before it is handed out, its socket always (a
// non-blocking peek) and with CheckQuery once idle longer than
// CheckDelay; a dead one is closed and Get goes on. The caller owns the
// server until Put.
func (s *Set) Get(ctx context.Context, id ID, addr string) (*Server, error) {
	start := time.Now()
	for {
		sv, opened, err := s.acquire(ctx, id, addr, start)
		if err != nil {
			return nil, err
		}
		if opened {
			return sv, nil
		}
		query := s.o().CheckQuery
		if s.o().CheckDelay > 0 && start.Sub(sv.lastUsed) < s.o().CheckDelay {
			query = "" // recently used: the socket check alone
		}
		if sv.healthy(ctx, query) {
			return sv, nil
		}
		s.log.Info("closing a server that failed its check", "member", id.Member,
			"database", id.Database, "user", id.User, "pid", sv.Key.PID)
		s.Put(sv, Close)
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
	}
}

func (s *Set) acquire(ctx context.Context, id ID, addr string, start time.Time) (*Server, bool, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, false, ErrClosed
	}
	p := s.pools[id]
	if p == nil {
		p = &pool{id: id, busy: map[*Server]struct{}{}}
		s.pools[id] = p
	}
	p.addr, p.used = addr, true
	w := &waiter{p: p, since: start, done: make(chan grant, 1)}
	p.waiters = append(p.waiters, w)
	s.dispatch()
	s.unlock()

	g, err := s.wait(ctx, w)
	switch {
	case err != nil:
		return nil, false, err
	case g.err != nil:
		return nil, false, g.err
	case g.sv != nil:
		return g.sv, false, nil
	}
	sv, err := s.openServer(ctx, p, addr, g)
	return sv, true, err
}

// wait waits for w's grant, for the reserve timeout, the query wait
// timeout and ctx. A waiter that gives up leaves the queue; if it was
// granted something meanwhile, that goes back.
func (s *Set) wait(ctx context.Context, w *waiter) (grant, error) {
	select {
	case g := <-w.done:
		return g, nil
	default:
	}
	var timeout, reserve <-chan time.Time
	if d := s.o().QueryWaitTimeout; d > 0 {
		t := time.NewTimer(d - time.Since(w.since))
		defer t.Stop()
		timeout = t.C
	}
	if s.o().ReserveSize > 0 {
		t := time.NewTimer(s.o().reserveTimeout() - time.Since(w.since))
		defer t.Stop()
		reserve = t.C
	}
	for {
		select {
		case g := <-w.done:
			return g, nil
		case <-reserve:
			reserve = nil
			s.mu.Lock()
			w.reserve = true
			s.dispatch()
			s.unlock()
		case <-timeout:
			s.mu.Lock()
			if s.dequeue(w) {
				err := s.exhausted(w)
				s.unlock()
				return grant{}, err
			}
			s.mu.Unlock()
			return <-w.done, nil
		case <-ctx.Done():
			s.mu.Lock()
			if !s.dequeue(w) {
				s.mu.Unlock()
				s.undo(<-w.done)
				return grant{}, context.Cause(ctx)
			}
			s.unlock()
			return grant{}, context.Cause(ctx)
		}
	}
}

// dequeue takes w out of its pool's queue; false if it was served.
func (s *Set) dequeue(w *waiter) bool {
	i := slices.Index(w.p.waiters, w)
	if i < 0 {
		return false
	}
	w.p.waiters = slices.Delete(w.p.waiters, i, i+1)
	return true
}

func (s *Set) exhausted(w *waiter) error {
	e := &ExhaustedError{ID: w.p.id, Waited: s.o().QueryWaitTimeout, Limit: "paused"}
	if !s.isPaused(w.p.id.Database) {
		e.Limit, e.InUse = s.describe(w.p, max(s.blocked(w.p, w.reserve), sizeLimit), w.reserve)
	}
	return e
}

// undo gives back a grant its waiter no longer wants.
func (s *Set) undo(g grant) {
	switch {
	case g.sv != nil:
		s.Put(g.sv, Idle)
	case g.open:
		s.mu.Lock()
		g.p.opening--
		s.addTotal(g.p, -1)
		s.dispatch()
		s.unlock()
	}
}

// openServer opens a server in the slot g reserved in p.
func (s *Set) openServer(ctx context.Context, p *pool, addr string, g grant) (*Server, error) {
	c, err := s.open(ctx, p.id, addr)
	now := time.Now()
	s.mu.Lock()
	p.opening--
	if err != nil {
		s.openFailed(p, err, now)
		// While a member is down every waiter's retry fails alike: one
		// line a second per pool says it.
		shout := now.Sub(p.failLogged) >= time.Second
		if shout {
			p.failLogged = now
		}
		s.unlock()
		if shout {
			s.log.Warn("opening a server failed", "member", p.id.Member, "addr", addr,
				"database", p.id.Database, "user", p.id.User, "err", err)
		}
		return nil, err
	}
	sv := s.opened(p, c, g.gen, now)
	if s.closed || p.gen != g.gen {
		s.doom(sv)
		err := ErrDrained
		if s.closed {
			err = ErrClosed
		}
		s.unlock()
		return nil, err
	}
	if p.reconn != g.reconn {
		sv.closeAtPut.Store(true)
	}
	sv.out = true
	p.busy[sv] = struct{}{}
	s.unlock()
	return sv, nil
}

// Put returns a server Get handed out: Idle to reuse it, Reset to run
// ResetQuery first, Close to close it. A server that is lost, marked by
// Reconnect, past Lifetime, or whose set is closed is closed whatever
// how says. The first waiter of its pool gets it at once.
func (s *Set) Put(sv *Server, how Release) {
	if how == Reset && s.o().ResetQuery != "" && !sv.closeAtPut.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), resetTimeout)
		if err := sv.Exec(ctx, s.o().ResetQuery); err != nil {
			s.log.Info("closing a server whose reset failed", "member", sv.id.Member, "err", err)
			how = Close
		}
		cancel()
	}
	now := time.Now()
	s.mu.Lock()
	if !sv.out {
		s.mu.Unlock()
		return
	}
	p := sv.p
	sv.out = false
	delete(p.busy, sv)
	over := p.total-p.closing > s.poolLimit(true) // the pool shrank (a reload)
	if how == Close || s.closed || sv.closeAtPut.Load() || sv.gen != p.gen || s.expired(sv, now) || over {
		s.doom(sv)
	} else {
		sv.lastUsed = now
		p.idle = append(p.idle, sv)
	}
	s.dispatch()
	s.unlock()
}

// openFailed frees the slot of an open that failed, remembering a
// rejected login for server_login_retry.
func (s *Set) openFailed(p *pool, err error, now time.Time) {
	s.addTotal(p, -1)
	if rejected(err) && s.o().LoginRetry > 0 {
		p.loginErr, p.loginUntil = err, now.Add(s.o().LoginRetry)
	}
	s.dispatch()
}

// opened counts a server opened for p, still in the slot reserved.
func (s *Set) opened(p *pool, c *Conn, gen uint64, now time.Time) *Server {
	p.loginErr = nil
	p.opened++
	return &Server{Conn: c, id: p.id, p: p, gen: gen, created: now, lastUsed: now}
}

func (s *Set) expired(sv *Server, now time.Time) bool {
	return s.o().Lifetime > 0 && now.Sub(sv.created) > s.o().Lifetime
}
