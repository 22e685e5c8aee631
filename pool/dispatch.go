package pool

import (
	"slices"
	"sync"
	"time"
)

// dispatch serves waiters while it can, the oldest first: each pool's
// queue in order, and across pools by how long their first waiter has
// waited, so that a slot a limit shares goes to the oldest. Called with
// the lock held, after anything that may have freed a server or a slot.
func (s *Set) dispatch() {
	if s.pausedAll || s.closed {
		return
	}
	var heads []*pool
	for _, p := range s.pools {
		if len(p.waiters) > 0 && !s.pausedDB[p.id.Database] {
			heads = append(heads, p)
		}
	}
	slices.SortFunc(heads, func(a, b *pool) int { return a.waiters[0].since.Compare(b.waiters[0].since) })
	for _, p := range heads {
		for len(p.waiters) > 0 {
			w := p.waiters[0]
			g, ok := s.serve(p, w.reserve)
			if !ok {
				break
			}
			p.waiters[0] = nil
			p.waiters = p.waiters[1:]
			w.done <- g
		}
	}
}

// serve finds p's first waiter a grant: an idle server, a slot to open
// one, or the remembered login error; ok is false when it must wait.
func (s *Set) serve(p *pool, reserve bool) (g grant, ok bool) {
	if n := len(p.idle); n > 0 {
		sv := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		sv.out = true
		p.busy[sv] = struct{}{}
		return grant{sv: sv}, true
	}
	switch l := s.blocked(p, reserve); l {
	case noLimit:
		if p.loginFailing(time.Now()) {
			return grant{err: p.loginErr}, true
		}
		p.opening++
		s.addTotal(p, 1)
		return grant{p: p, open: true, gen: p.gen, reconn: p.reconn}, true
	case dbLimit, userLimit:
		s.evictFor(p, l)
	}
	return grant{}, false
}

// doom moves a server (no longer idle or busy) to closing; it still
// counts against the limits until unlock has closed it.
func (s *Set) doom(sv *Server) {
	sv.p.closing++
	s.doomed = append(s.doomed, sv)
}

// unlock releases the lock, then closes the servers doomed under it, in
// a goroutine of the Set's (Close waits for them) unless the set is
// closed already. It also tells a Pause when nothing is checked out.
func (s *Set) unlock() {
	s.quiets = slices.DeleteFunc(s.quiets, func(q quiet) bool {
		if s.busy(q.db) == 0 {
			close(q.ch)
			return true
		}
		return false
	})
	doomed := s.doomed
	s.doomed = nil
	if len(doomed) == 0 {
		s.mu.Unlock()
		return
	}
	async := !s.closed
	if async {
		s.closers.Add(1)
	}
	s.mu.Unlock()
	if !async {
		s.closeServers(doomed)
		return
	}
	go func() {
		defer s.closers.Done()
		s.closeServers(doomed)
	}()
}

// busy counts servers of database db ("" for all) checked out or being
// opened for a Get.
func (s *Set) busy(db string) int {
	n := 0
	for _, p := range s.pools {
		if db == "" || p.id.Database == db {
			n += len(p.busy) + p.opening
		}
	}
	return n
}

// quiet is a Pause waiting until no server of db is busy.
type quiet struct {
	db string
	ch chan struct{}
}

// closeServers terminates servers (in parallel: each may take up to
// closeWait) and then frees their slots.
func (s *Set) closeServers(svs []*Server) {
	var wg sync.WaitGroup
	for _, sv := range svs {
		wg.Go(sv.terminate)
	}
	wg.Wait()
	s.mu.Lock()
	for _, sv := range svs {
		sv.p.closing--
		sv.p.closed++
		s.addTotal(sv.p, -1)
	}
	s.dispatch()
	s.unlock()
}
