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

// Reconnect closes the idle servers of member and database db ("" for
// any) now, and its checked-out ones when they are Put, as pgbouncer's
// RECONNECT. They are not lost: their users go on until they are done.
func (s *Set) Reconnect(member, db string) {
	s.mu.Lock()
	for _, p := range s.pools {
		if (member == "" || p.id.Member == member) && (db == "" || p.id.Database == db) {
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

// Pause holds new checkouts of database db ("" for every database):
// Gets wait, within their own ctx and QueryWaitTimeout. It waits until no
// server of db is checked out; if ctx ends first it returns its cause.
// The pools stay paused either way until Resume.
func (s *Set) Pause(ctx context.Context, db string) error {
	s.mu.Lock()
	if db == "" {
		s.pausedAll = true
	} else {
		s.pausedDB[db] = true
	}
	if s.busy(db) == 0 {
		s.mu.Unlock()
		return nil
	}
	q := quiet{db: db, ch: make(chan struct{})}
	s.quiets = append(s.quiets, q)
	s.mu.Unlock()
	select {
	case <-q.ch:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Resume ends a Pause of db ("" ends every pause); waiters are served
// in order. It reports whether anything was paused.
func (s *Set) Resume(db string) bool {
	s.mu.Lock()
	was := s.pausedAll || len(s.pausedDB) > 0
	if db == "" {
		s.pausedAll = false
		clear(s.pausedDB)
	} else {
		was = s.pausedDB[db]
		delete(s.pausedDB, db)
	}
	s.dispatch()
	s.unlock()
	return was
}

// Paused reports whether checkouts of db ("" for all of them) are held.
func (s *Set) Paused(db string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if db == "" {
		return s.pausedAll
	}
	return s.isPaused(db)
}

func (s *Set) isPaused(db string) bool { return s.pausedAll || s.pausedDB[db] }

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

// ServerInfo describes one open server connection, for SHOW SERVERS.
type ServerInfo struct {
	ID       ID
	Conn     *Conn  // for its addresses, key and TLS state; not to use
	Active   bool   // checked out
	Owner    uint64 // the session that has it checked out (Server.Owner), if set
	Created  time.Time
	LastUsed time.Time
	// Statements is the idle server's Conn.Statements (nil while it is
	// checked out: its user may be changing it).
	Statements any
}

// Servers lists every open server connection, ordered as Stats.
func (s *Set) Servers() []ServerInfo {
	s.mu.Lock()
	var out []ServerInfo
	for _, p := range s.pools {
		for _, sv := range p.idle {
			out = append(out, ServerInfo{ID: p.id, Conn: sv.Conn, Created: sv.created, LastUsed: sv.lastUsed,
				Statements: sv.Statements})
		}
		for sv := range p.busy {
			out = append(out, ServerInfo{ID: p.id, Conn: sv.Conn, Active: true, Owner: sv.Owner.Load(),
				Created: sv.created, LastUsed: sv.lastUsed})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b ServerInfo) int {
		if c := strings.Compare(a.ID.Member+"\x00"+a.ID.Database+"\x00"+a.ID.User,
			b.ID.Member+"\x00"+b.ID.Database+"\x00"+b.ID.User); c != 0 {
			return c
		}
		return a.Created.Compare(b.Created)
	})
	return out
}
