package pooler

import (
	"encoding/binary"
	"strconv"
	"sync"
	"sync/atomic"
)

// namePrefix starts the name every shared statement has on the servers.
// A client's own statement names never reach a server.
const namePrefix = "SWITCHYARD_"

// Statement is one distinct prepared statement: a query text with its
// parameter types, under the client settings it was prepared with. Every
// client that prepares it shares it, under whatever names they gave it,
// and it has one name on every server.
type Statement struct {
	Name  string // on the servers: SWITCHYARD_<n>
	key   string
	parse []byte      // a Parse of the statement under Name
	refs  int         // client names that hold it; guarded by the registry
	good  atomic.Bool // a server has prepared it without error
}

// Registry hands out the proxy-wide statements. It is safe for
// concurrent use; a statement lives while a client holds it.
type Registry struct {
	mu    sync.Mutex
	byKey map[string]*Statement
	next  uint64
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{byKey: map[string]*Statement{}} }

// Len is the number of statements clients hold.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byKey)
}

// acquire returns the statement for (settings, query, types), holding it
// once more.
func (r *Registry) acquire(settings uint64, query, types []byte) *Statement {
	key := statementKey(settings, query, types)
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.byKey[key]
	if st == nil {
		r.next++
		st = &Statement{Name: namePrefix + strconv.FormatUint(r.next, 10), key: key}
		st.parse = appendParse(nil, st.Name, query, types)
		r.byKey[key] = st
	}
	st.refs++
	return st
}

// known returns, held once more, the statement for (settings, query,
// types) if one exists that a server has prepared.
func (r *Registry) known(settings uint64, query, types []byte) *Statement {
	key := statementKey(settings, query, types)
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.byKey[key]
	if st == nil || !st.good.Load() {
		return nil
	}
	st.refs++
	return st
}

// release lets go of one hold on st.
func (r *Registry) release(st *Statement) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st.refs--
	if st.refs <= 0 && r.byKey[st.key] == st {
		delete(r.byKey, st.key)
	}
}

// renew answers a server's "cached plan must not change result type" for
// st: the next client to ask for its text gets a new statement, planned
// afresh on every server, and the caller moves its hold there.
func (r *Registry) renew(st *Statement) *Statement {
	r.mu.Lock()
	if r.byKey[st.key] == st {
		delete(r.byKey, st.key)
	}
	r.mu.Unlock()
	settings, query, types := splitKey(st.key)
	fresh := r.acquire(settings, query, types)
	r.release(st)
	return fresh
}

func statementKey(settings uint64, query, types []byte) string {
	b := make([]byte, 0, 8+4+len(types)+len(query))
	b = binary.BigEndian.AppendUint64(b, settings)
	b = binary.BigEndian.AppendUint32(b, uint32(len(types)))
	b = append(b, types...)
	return string(append(b, query...))
}

func splitKey(key string) (settings uint64, query, types []byte) {
	b := []byte(key)
	settings = binary.BigEndian.Uint64(b)
	n := binary.BigEndian.Uint32(b[8:])
	return settings, b[12+n:], b[12 : 12+n]
}

// appendParse appends a Parse of query under name; types is the Parse's
// parameter-type part (count and OIDs) as the client sent it.
func appendParse(b []byte, name string, query, types []byte) []byte {
	b = append(b, 'P')
	b = binary.BigEndian.AppendUint32(b, uint32(4+len(name)+1+len(query)+1+len(types)))
	b = append(b, name...)
	b = append(b, 0)
	b = append(b, query...)
	b = append(b, 0)
	return append(b, types...)
}

// Statements is what one server connection has prepared, least recently
// used first out, bounded by max_prepared_statements. It travels with the
// connection from client to client (pool.Conn.Statements); only the
// client attached to the connection touches it.
type Statements struct {
	max   int
	byStm map[*Statement]*cached
	head  cached // sentinel of the LRU list: head.next is the most recent
	seq   uint64 // additions so far, to order them against DEALLOCATE ALL
	batch uint64 // Syncs and Queries sent, so that a batch's statements stay
}

type cached struct {
	st         *Statement
	prev, next *cached
	seq        uint64 // when it was added
	batch      uint64 // the batch that last used it
}

func newStatements(max int) *Statements {
	s := &Statements{max: max, byStm: map[*Statement]*cached{}}
	s.head.prev, s.head.next = &s.head, &s.head
	return s
}

// Len is the number of statements the server has.
func (s *Statements) Len() int { return len(s.byStm) }

// has reports whether the server has st, marking it used.
func (s *Statements) has(st *Statement) bool {
	c := s.byStm[st]
	if c == nil {
		return false
	}
	c.batch = s.batch
	s.unlink(c)
	s.pushFront(c)
	return true
}

// add records that st is being prepared on the server and returns its
// sequence number.
func (s *Statements) add(st *Statement) uint64 {
	s.seq++
	c := &cached{st: st, seq: s.seq, batch: s.batch}
	s.byStm[st] = c
	s.pushFront(c)
	return s.seq
}

// victim is the statement to close to make room for one more, or nil
// when there is room or every statement serves the batch under way.
func (s *Statements) victim() *Statement {
	if len(s.byStm) < s.max {
		return nil
	}
	for c := s.head.prev; c != &s.head; c = c.prev {
		if c.batch != s.batch {
			return c.st
		}
	}
	return nil
}

// remove forgets st; with seq != 0, only the copy added then.
func (s *Statements) remove(st *Statement, seq uint64) {
	c := s.byStm[st]
	if c == nil || seq != 0 && c.seq != seq {
		return
	}
	delete(s.byStm, st)
	s.unlink(c)
}

// forgetBefore forgets every statement added before seq (the server ran
// DEALLOCATE ALL or DISCARD ALL).
func (s *Statements) forgetBefore(seq uint64) {
	for st, c := range s.byStm {
		if c.seq < seq {
			delete(s.byStm, st)
			s.unlink(c)
		}
	}
}

func (s *Statements) unlink(c *cached) {
	c.prev.next, c.next.prev = c.next, c.prev
}

func (s *Statements) pushFront(c *cached) {
	c.prev, c.next = &s.head, s.head.next
	s.head.next.prev = c
	s.head.next = c
}
