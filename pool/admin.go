package pool

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Drain is for a member that lost its role: its idle servers close now,
// checked-out ones are marked Lost and close at Put, servers being opened
// are closed when they are, and its waiters get ErrDrained at once (the
// caller routes them again). It returns how many servers it closed or
// marked. The pools stay, for when the member is routed to again.
func (s *Set) Drain(member string) int {
	s.mu.Lock()
	n := 0
	for _, p := range s.pools {
		if p.id.Member != member {
			continue
		}
		p.gen++
		p.used = false
		n += s.closeIdle(p, true)
		for _, w := range p.waiters {
			w.done <- grant{err: ErrDrained}
		}
		p.waiters = nil
	}
	s.dispatch()
	s.unlock()
	return n
}

// Reconnect closes the idle servers of member ("" for every member) now,
// and its checked-out ones when they are Put, as pgbouncer's RECONNECT.
// They are not lost: their users go on until they are done.
func (s *Set) Reconnect(member string) {
	s.mu.Lock()
	for _, p := range s.pools {
		if member == "" || p.id.Member == member {
			p.reconn++
			s.closeIdle(p, false)
		}
	}
	s.dispatch()
	s.unlock()
}

// closeIdle dooms p's idle servers and marks its busy ones to close at
// Put (and as lost); it returns how many.
func (s *Set) closeIdle(p *pool, lost bool) int {
	n := len(p.idle) + len(p.busy)
	for _, sv := range p.idle {
		s.doom(sv)
	}
	p.idle = nil
	for sv := range p.busy {
		sv.closeAtPut.Store(true)
		if lost {
			sv.lost.Store(true)
		}
	}
	return n
}

// Pause holds new checkouts (Gets wait, within their own ctx and
// QueryWaitTimeout) and waits until no server is checked out. If ctx ends
// first it returns its cause; the set stays paused either way.
func (s *Set) Pause(ctx context.Context) error {
	s.mu.Lock()
	s.paused = true
	if s.busy() == 0 {
		s.mu.Unlock()
		return nil
	}
	if s.quiet == nil {
		s.quiet = make(chan struct{})
	}
	quiet := s.quiet
	s.mu.Unlock()
	select {
	case <-quiet:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Resume ends a Pause: waiters are served in order.
func (s *Set) Resume() {
	s.mu.Lock()
	s.paused = false
	s.dispatch()
	s.unlock()
}

// Close closes every idle server and waits until they are closed;
// checked-out ones close at Put. Waiting and later Gets fail with
// ErrClosed. Run should have returned or be about to.
func (s *Set) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.closers.Wait()
		return
	}
	for _, p := range s.pools {
		p.gen++
		s.closeIdle(p, false)
		for _, w := range p.waiters {
			w.done <- grant{err: ErrClosed}
		}
		p.waiters = nil
	}
	s.closed = true
	s.unlock()
	s.closers.Wait()
}

// Stats describes every pool, ordered by member, database and user.
func (s *Set) Stats() []Stats {
	now := time.Now()
	s.mu.Lock()
	out := make([]Stats, 0, len(s.pools))
	for _, p := range s.pools {
		st := Stats{ID: p.id, Addr: p.addr, Active: len(p.busy), Idle: len(p.idle), Login: p.opening,
			Closing: p.closing, Waiting: len(p.waiters), Opened: p.opened, Closed: p.closed}
		if len(p.waiters) > 0 {
			st.MaxWait = now.Sub(p.waiters[0].since)
		}
		out = append(out, st)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Stats) int {
		return strings.Compare(a.ID.Member+"\x00"+a.ID.Database+"\x00"+a.ID.User,
			b.ID.Member+"\x00"+b.ID.Database+"\x00"+b.ID.User)
	})
	return out
}
