package pool

import (
	"context"
	"time"
)

// Run does the pools' upkeep until ctx ends: it closes idle servers past
// IdleTimeout (keeping MinSize) or Lifetime, opens servers up to MinSize
// for pools that have been used, and forgets empty pools. It wakes every
// second, or more often when the timeouts are short.
func (s *Set) Run(ctx context.Context) {
	t := time.NewTimer(s.period())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.maintain(ctx)
		t.Reset(s.period())
	}
}

func (s *Set) period() time.Duration {
	d := time.Second
	for _, x := range []time.Duration{s.o().IdleTimeout / 2, s.o().Lifetime / 2} {
		if x > 0 && x < d {
			d = x
		}
	}
	return max(d, 10*time.Millisecond)
}

// opening is a slot maintain reserved to open a server for MinSize.
type opening struct {
	p           *pool
	addr        string
	gen, reconn uint64
}

func (s *Set) maintain(ctx context.Context) {
	now := time.Now()
	var opens []opening
	s.mu.Lock()
	for id, p := range s.pools {
		live := p.total - p.closing
		keep := p.idle[:0]
		for _, sv := range p.idle {
			idleTooLong := s.o().IdleTimeout > 0 && now.Sub(sv.lastUsed) > s.o().IdleTimeout &&
				(!p.used || live > s.o().MinSize)
			if idleTooLong || s.expired(sv, now) {
				s.doom(sv)
				live--
				continue
			}
			keep = append(keep, sv)
		}
		clear(p.idle[len(keep):])
		p.idle = keep
		if p.total == 0 && len(p.waiters) == 0 && (!p.used || s.o().MinSize == 0) {
			delete(s.pools, id)
			continue
		}
		if s.isPaused(p.id.Database) || s.closed || !p.used || p.loginFailing(now) {
			continue
		}
		for ; live < s.o().MinSize && s.blocked(p, false) == noLimit; live++ {
			p.opening++
			s.addTotal(p, 1)
			opens = append(opens, opening{p: p, addr: p.addr, gen: p.gen, reconn: p.reconn})
		}
	}
	s.dispatch()
	s.unlock()
	for _, o := range opens {
		s.openIdle(ctx, o)
	}
}

// openIdle opens a server into the slot o reserved and makes it idle.
func (s *Set) openIdle(ctx context.Context, o opening) {
	c, err := s.open(ctx, o.p.id, o.addr)
	now := time.Now()
	s.mu.Lock()
	p := o.p
	p.opening--
	if err != nil {
		s.openFailed(p, err, now)
		s.unlock()
		if ctx.Err() == nil {
			s.log.Warn("opening a server for min_pool_size failed", "member", p.id.Member, "addr", o.addr,
				"database", p.id.Database, "user", p.id.User, "err", err)
		}
		return
	}
	sv := s.opened(p, c, o.gen, now)
	if s.closed || p.gen != o.gen || p.reconn != o.reconn {
		s.doom(sv)
	} else {
		p.idle = append(p.idle, sv)
	}
	s.dispatch()
	s.unlock()
}
