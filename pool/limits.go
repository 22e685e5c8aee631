package pool

import (
	"fmt"
	"slices"
)

// scope is a (member, database) or (member, user) pair that
// max_db_connections or max_user_connections counts.
type scope struct{ member, name string }

// limit is what keeps a pool from opening one more server.
type limit uint8

const (
	noLimit limit = iota
	sizeLimit
	dbLimit
	userLimit
)

// addTotal counts d servers more (or fewer) against p's limits.
func (s *Set) addTotal(p *pool, d int) {
	p.total += d
	s.dbConns[scope{p.id.Member, p.id.Database}] += d
	s.userConns[scope{p.id.Member, p.id.User}] += d
}

func (s *Set) poolLimit(reserve bool) int {
	if reserve {
		return s.o().size() + s.o().ReserveSize
	}
	return s.o().size()
}

// blocked says which limit keeps p from opening a server now, if any; a
// waiter with reserve may use reserve_pool_size too.
func (s *Set) blocked(p *pool, reserve bool) limit {
	switch {
	case p.total >= s.poolLimit(reserve):
		return sizeLimit
	case s.o().MaxDBConns > 0 && s.dbConns[scope{p.id.Member, p.id.Database}] >= s.o().MaxDBConns:
		return dbLimit
	case s.o().MaxUserConns > 0 && s.userConns[scope{p.id.Member, p.id.User}] >= s.o().MaxUserConns:
		return userLimit
	}
	return noLimit
}

// describe names a limit in pgbouncer's words and says how many it counts.
func (s *Set) describe(p *pool, l limit, reserve bool) (string, int) {
	switch l {
	case dbLimit:
		return fmt.Sprintf("max_db_connections = %d", s.o().MaxDBConns), s.dbConns[scope{p.id.Member, p.id.Database}]
	case userLimit:
		return fmt.Sprintf("max_user_connections = %d", s.o().MaxUserConns), s.userConns[scope{p.id.Member, p.id.User}]
	}
	what := fmt.Sprintf("default_pool_size = %d", s.o().size())
	if reserve && s.o().ReserveSize > 0 {
		what += fmt.Sprintf(" + reserve_pool_size = %d", s.o().ReserveSize)
	}
	return what, p.total
}

// evictFor makes room for p, held back by max_db_connections or
// max_user_connections, as pgbouncer does: it closes the least recently
// used idle server of another pool that counts against the same limit.
// Nothing is evicted while a server in that scope is already closing:
// its slot is on the way.
func (s *Set) evictFor(p *pool, l limit) {
	same := func(q *pool) bool {
		if q.id.Member != p.id.Member {
			return false
		}
		if l == dbLimit {
			return q.id.Database == p.id.Database
		}
		return q.id.User == p.id.User
	}
	var victim *pool
	for _, q := range s.pools {
		if !same(q) {
			continue
		}
		if q.closing > 0 {
			return
		}
		if q != p && len(q.idle) > 0 && len(q.waiters) == 0 && (victim == nil || q.idle[0].lastUsed.Before(victim.idle[0].lastUsed)) {
			victim = q
		}
	}
	if victim == nil {
		return
	}
	sv := victim.idle[0]
	victim.idle = slices.Delete(victim.idle, 0, 1)
	s.doom(sv)
}
