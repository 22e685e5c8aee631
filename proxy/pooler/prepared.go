package pooler

import (
	"encoding/binary"
)

// Protocol-level prepared statements in transaction mode. A client's
// named statements are the client's alone (names), each pointing at a
// shared Statement that has one name on every server; the server the
// client has now may lack it, so a Bind or Describe of it is preceded by
// a Parse of Switchyard's own, whose answer the client never sees. The
// client's unnamed statement follows it the same way. Answers stay in
// order through an explicit queue of what the server owes: each request
// is forwarded (its answer goes to the client), Switchyard's own (its
// answer is swallowed), or answered by Switchyard (ParseComplete or
// CloseComplete, sent when everything before it has been answered).
type prepared struct {
	reg   *Registry
	max   int
	names map[string]named // the client's named statements
	seq   uint64           // the client's Parses so far

	unnamed     []byte // the client's last unnamed Parse, when hasUnnamed
	hasUnnamed  bool
	unnamedHere bool // the attached server has it

	sv       *Statements // of the attached server
	q        queue       // what the server owes, oldest first
	owed     int         // entries of q the server answers (not answered here)
	ignoring bool        // the server skips to the next Sync after an error

	out, before, after, errOut []byte // scratch, valid until the next call
}

type named struct {
	st  *Statement
	seq uint64
}

// request is one entry of the queue.
type request struct {
	typ  byte // the client's message type (P B D E C S Q F), or 0: answered here
	fake byte // for typ 0: '1' ParseComplete or '3' CloseComplete
	own  bool // Switchyard's own request: the answer is swallowed

	st      *Statement // the statement it prepares or uses
	name    string     // Parse: the client name it creates; fake Close: the name it drops
	nameSeq uint64     // Parse: the client's seq of that name
	added   uint64     // Parse: st's seq on the server if this request added it
	dup     string     // Parse of a name in use: the client's name, for the error
	unnamed bool       // the client's own unnamed Parse
	evicted bool       // own Close of st, evicted from the server's statements
	dealloc bool       // Query: a DEALLOCATE of st
	quiet   bool       // own: an error is swallowed too (a Sync follows)
	cseq    uint64     // the client's and the server's seq when it was sent,
	sseq    uint64     // for a DEALLOCATE ALL or DISCARD ALL it runs
}

func newPrepared(reg *Registry, max int) *prepared {
	return &prepared{reg: reg, max: max, names: map[string]named{}}
}

// attach starts serving the client on a server whose statements are sv.
func (p *prepared) attach(sv *Statements) {
	p.sv = sv
	p.unnamedHere = false
	p.ignoring = false
	p.q.reset()
	p.owed = 0
}

// detach leaves the server. What it still owed is given up: a request
// that never completed did not happen.
func (p *prepared) detach() {
	p.drop(p.q.len())
	p.owed = 0
	p.sv = nil
	p.unnamedHere = false
}

// close lets go of every statement the client holds.
func (p *prepared) close() { p.forgetNames(p.seq + 1) }

// forgetNames drops the client's names made before seq.
func (p *prepared) forgetNames(seq uint64) {
	for name, n := range p.names {
		if n.seq < seq {
			delete(p.names, name)
			p.reg.release(n.st)
		}
	}
}

func (p *prepared) push(r request) {
	r.cseq, r.sseq = p.seq+1, p.sv.seq+1
	p.q.push(r)
	if r.typ != 0 {
		p.owed++
	}
}

// client handles a message of the client while a server is attached (sql
// is a Query's text): send is what goes to the server instead of msg
// (nil: msg itself), and drop is set when nothing goes (the message is
// answered here, or the server would ignore it).
func (p *prepared) client(msg []byte, sql string, settings uint64) (send []byte, drop bool) {
	t := msg[0]
	if p.ignoring && t != 'S' {
		return nil, true // PostgreSQL skips to Sync after an error; so do we
	}
	p.out = p.out[:0]
	switch t {
	case 'P':
		return p.parse(msg, settings)
	case 'B':
		_, rest, _ := cut(msg[5:])
		name, _, _ := cut(rest)
		return p.use(msg, 'B', name, 5+len(msg[5:])-len(rest))
	case 'D':
		if len(msg) > 5 && msg[5] == 'S' {
			name, _, _ := cut(msg[6:])
			return p.use(msg, 'D', name, 6)
		}
		p.push(request{typ: 'D'})
	case 'C':
		return p.close1(msg)
	case 'E', 'F':
		p.push(request{typ: t})
	case 'S':
		p.ignoring = false
		p.sv.batch++
		p.push(request{typ: 'S'})
	case 'Q':
		p.hasUnnamed, p.unnamedHere = false, false // a Query drops the unnamed statement
		p.sv.batch++
		var send []byte
		var st *Statement
		if mentionsDeallocation(sql) {
			if Deallocates(sql) {
				// DEALLOCATE ALL or DISCARD ALL: what is sent after it
				// must not meet the statements it removes (pgbouncer #1535).
				p.forgetAll()
			}
			send, st = p.deallocate(sql)
		}
		p.push(request{typ: 'Q', st: st, dealloc: st != nil})
		return send, false
	case 'H':
		if p.q.len() > 0 && p.owed == 0 {
			// Only answers of our own are queued, and the server owes
			// nothing that would carry them out: ask it for something
			// harmless (closing a portal that does not exist).
			p.out = appendClose(p.out, 'P', namePrefix+"FLUSH")
			p.push(request{typ: 'C', own: true})
			return append(p.out, msg...), false
		}
	}
	return nil, false
}

// parse handles a client's Parse.
func (p *prepared) parse(msg []byte, settings uint64) ([]byte, bool) {
	name, rest, _ := cut(msg[5:])
	query, types, _ := cut(rest)
	if len(name) == 0 {
		p.unnamed = append(p.unnamed[:0], msg...)
		p.hasUnnamed, p.unnamedHere = true, true
		p.push(request{typ: 'P', unnamed: true})
		return nil, false
	}
	if have, ok := p.names[string(name)]; ok {
		// A name in use: the server answers with PostgreSQL's own
		// 42P05, which names the client's statement.
		p.ensure(have.st, false)
		p.out = appendParse(p.out, have.st.Name, query, types)
		p.push(request{typ: 'P', dup: string(name), st: have.st})
		return p.out, false
	}
	st := p.reg.acquire(settings, query, types)
	p.seq++
	n := named{st: st, seq: p.seq}
	p.names[string(name)] = n
	if p.sv.has(st) {
		p.push(request{fake: '1', name: string(name), nameSeq: n.seq, st: st})
		return nil, true
	}
	p.push(request{typ: 'P', name: string(name), nameSeq: n.seq, st: st, added: p.prepare(st)})
	return p.out, false
}

// use handles a Bind or Describe of a statement: one of the client's is
// prepared on the server first if it lacks it, and renamed; at is where
// the name starts in msg.
func (p *prepared) use(msg []byte, t byte, name []byte, at int) ([]byte, bool) {
	if len(name) == 0 {
		if !p.unnamedHere && p.hasUnnamed {
			p.out = append(p.out, p.unnamed...)
			p.push(request{typ: 'P', own: true})
			p.unnamedHere = true
		}
		p.push(request{typ: t})
		if len(p.out) == 0 {
			return nil, false
		}
		return append(p.out, msg...), false
	}
	n, ok := p.names[string(name)]
	if !ok { // PostgreSQL answers: prepared statement does not exist
		p.push(request{typ: t})
		return nil, false
	}
	p.ensure(n.st, false)
	p.push(request{typ: t, st: n.st})
	start := len(p.out)
	p.out = append(p.out, msg[:at]...)
	p.out = append(p.out, n.st.Name...)
	p.out = append(p.out, msg[at+len(name):]...)
	binary.BigEndian.PutUint32(p.out[start+1:], uint32(len(p.out)-start-1))
	return p.out, false
}

// ensure prepares st on the server first if it lacks it; quiet when a
// Sync of our own follows, which swallows an error.
func (p *prepared) ensure(st *Statement, quiet bool) {
	if p.sv.has(st) {
		return
	}
	p.push(request{typ: 'P', own: true, st: st, added: p.prepare(st), quiet: quiet})
}

// prepare appends a Parse of st to what goes to the server (after a Close
// making room for it) and records it on the server; it returns st's seq
// there. The caller queues the Parse.
func (p *prepared) prepare(st *Statement) uint64 {
	p.evict()
	p.out = append(p.out, st.parse...)
	return p.sv.add(st)
}

// evict closes the least recently used statement when the server has
// max_prepared_statements already.
func (p *prepared) evict() {
	if v := p.sv.victim(); v != nil {
		p.sv.remove(v, 0)
		p.out = appendClose(p.out, 'S', v.Name)
		p.push(request{typ: 'C', own: true, st: v, evicted: true})
	}
}

// close1 handles a client's Close.
func (p *prepared) close1(msg []byte) ([]byte, bool) {
	if len(msg) < 6 || msg[5] != 'S' {
		p.push(request{typ: 'C'})
		return nil, false
	}
	name, _, _ := cut(msg[6:])
	if len(name) == 0 {
		p.hasUnnamed, p.unnamedHere = false, false
		p.push(request{typ: 'C'})
		return nil, false
	}
	// The server keeps the statement for whoever needs it next; the
	// client's name goes, and the client is answered in its turn.
	r := request{fake: '3'}
	if n, ok := p.names[string(name)]; ok {
		delete(p.names, string(name))
		r.name, r.st, r.nameSeq = string(name), n.st, n.seq
	}
	p.push(r)
	return nil, true
}

// parseDetached answers a Parse when no server is attached, if it can:
// a new name for a statement some server has prepared already. The
// client's Bind or Describe will prepare it where it runs.
func (p *prepared) parseDetached(msg []byte, settings uint64) bool {
	name, rest, _ := cut(msg[5:])
	query, types, _ := cut(rest)
	if len(name) == 0 {
		return false
	}
	if _, ok := p.names[string(name)]; ok {
		return false // the server answers 42P05
	}
	st := p.reg.known(settings, query, types)
	if st == nil {
		return false
	}
	p.seq++
	p.names[string(name)] = named{st: st, seq: p.seq}
	return true
}

// closeDetached answers a Close when no server is attached.
func (p *prepared) closeDetached(msg []byte) []byte {
	if len(msg) >= 6 && msg[5] == 'S' {
		name, _, _ := cut(msg[6:])
		if len(name) == 0 {
			p.hasUnnamed = false
		} else if n, ok := p.names[string(name)]; ok {
			delete(p.names, string(name))
			p.reg.release(n.st)
		}
	}
	return closeComplete
}

// deallocate rewrites a Query that is one SQL DEALLOCATE of a statement
// the client prepared with Parse (PDO does this): the client's name goes,
// and the server deallocates the shared statement under its own name
// (preparing it first if it lacks it, so that the answer is PostgreSQL's).
func (p *prepared) deallocate(sql string) ([]byte, *Statement) {
	name, ok := deallocateName(sql)
	if !ok {
		return nil, nil
	}
	n, ok := p.names[name]
	if !ok {
		return nil, nil
	}
	delete(p.names, name)
	p.reg.release(n.st)
	if !p.sv.has(n.st) {
		p.ensure(n.st, true)
		p.out = append(p.out, 'S', 0, 0, 0, 4)
		p.push(request{typ: 'S', own: true})
	}
	return appendQuery(p.out, `DEALLOCATE "`+n.st.Name+`"`), n.st
}

// forgetAll forgets the client's statements and the server's.
func (p *prepared) forgetAll() {
	p.forgetNames(p.seq + 1)
	p.sv.forgetBefore(p.sv.seq + 1)
}

// server judges a message of the server. It returns what to send the
// client before msg (answers of ours whose turn came), whether msg itself
// goes (and as what: replace, or msg when nil), and what to send after
// it.
func (p *prepared) server(msg []byte) (before []byte, forward bool, replace, after []byte) {
	p.before, p.after = p.before[:0], p.after[:0]
	p.before = p.fakes(p.before)
	if p.q.len() == 0 {
		return p.before, true, nil, nil
	}
	r := p.q.at(0)
	t := msg[0]
	forward = !r.own
	switch t {
	case 'E':
		if r.typ == 'Q' || r.typ == 'S' || r.typ == 'F' {
			break // the request goes on to its ReadyForQuery
		}
		forward = !r.quiet
		replace = p.failed(r, msg)
		p.pop(false)
		p.skipToSync()
		p.after = p.fakes(p.after)
		return p.before, forward, replace, p.after
	case 'C':
		p.commandComplete(r, msg)
	}
	if completes(r.typ, t) {
		if t == '1' && r.st != nil {
			r.st.good.Store(true)
		}
		p.pop(true)
		p.after = p.fakes(p.after)
	}
	return p.before, forward, nil, p.after
}

// completes reports whether a server message of type t is the last
// answer to a request of type typ.
func completes(typ, t byte) bool {
	switch typ {
	case 'P':
		return t == '1'
	case 'B':
		return t == '2'
	case 'D':
		return t == 'T' || t == 'n'
	case 'E':
		return t == 'C' || t == 'I' || t == 's'
	case 'C':
		return t == '3'
	case 'S', 'Q', 'F':
		return t == 'Z'
	}
	return false
}

// commandComplete forgets what a DEALLOCATE, DEALLOCATE ALL or DISCARD
// ALL run by r removed from the client and the server.
func (p *prepared) commandComplete(r *request, msg []byte) {
	tag, _, _ := cut(msg[5:])
	if r.dealloc && string(tag) == "DEALLOCATE" {
		p.sv.remove(r.st, 0)
		return
	}
	if string(tag) != "DEALLOCATE ALL" && string(tag) != "DISCARD ALL" {
		return
	}
	p.forgetNames(r.cseq)
	p.sv.forgetBefore(r.sseq)
}

// failed handles an error answering r and returns the error to send
// instead, if it must change.
func (p *prepared) failed(r *request, msg []byte) []byte {
	p.undo(r)
	if r.dup != "" && r.st != nil {
		p.errOut = renameInError(p.errOut[:0], msg, r.st.Name, r.dup)
		return p.errOut
	}
	if r.st != nil && planChanged(msg) {
		// The statement's plan is stale on this server. Every client
		// holding it moves to a fresh one as it meets this error, so
		// that its driver's re-prepare (or its next execution) works.
		for name, n := range p.names {
			if n.st == r.st {
				p.names[name] = named{st: p.reg.renew(n.st), seq: n.seq}
			}
		}
	}
	return nil
}

// undo takes back what a request that did not complete assumed.
func (p *prepared) undo(r *request) {
	switch {
	case r.added != 0:
		p.sv.remove(r.st, r.added)
	case r.evicted && p.sv.byStm[r.st] == nil:
		p.sv.add(r.st) // the server still has it
	}
	if r.unnamed {
		p.hasUnnamed, p.unnamedHere = false, false
	}
	if r.typ == 'P' && r.own && r.st == nil {
		p.unnamedHere = false
	}
	switch {
	case r.name != "" && (r.typ == 'P' || r.fake == '1'):
		if n, ok := p.names[r.name]; ok && n.seq == r.nameSeq {
			delete(p.names, r.name)
			p.reg.release(n.st)
		}
	case r.name != "" && r.fake == '3':
		if _, ok := p.names[r.name]; !ok {
			p.names[r.name] = named{st: r.st, seq: r.nameSeq} // the client's again
		} else {
			p.reg.release(r.st)
		}
	}
}

// pop removes the head of the queue, which completed.
func (p *prepared) pop(ok bool) {
	r := p.q.at(0)
	if ok && r.fake == '3' && r.name != "" {
		p.reg.release(r.st)
	}
	if r.typ != 0 {
		p.owed--
	}
	p.q.popFront(1)
}

// skipToSync drops what the server will skip after an error: everything
// up to the next Sync. With no Sync sent yet, the client's messages are
// dropped until it sends one.
func (p *prepared) skipToSync() {
	n := 0
	for n < p.q.len() && p.q.at(n).typ != 'S' {
		n++
	}
	p.drop(n)
	if p.q.len() == 0 {
		p.ignoring = true
	}
}

// drop takes the first n requests off the queue, undoing them newest
// first (a Close then a Parse of the same name, undone, leave the name as
// it was).
func (p *prepared) drop(n int) {
	for i := n - 1; i >= 0; i-- {
		r := p.q.at(i)
		p.undo(r)
		if r.typ != 0 {
			p.owed--
		}
	}
	p.q.popFront(n)
}

// fakes appends the answers of ours at the head of the queue, whose turn
// has come.
func (p *prepared) fakes(b []byte) []byte {
	for p.q.len() > 0 && p.q.at(0).typ == 0 {
		b = append(b, p.q.at(0).fake, 0, 0, 0, 4)
		p.pop(true)
	}
	return b
}

var (
	parseComplete = []byte{'1', 0, 0, 0, 4}
	closeComplete = []byte{'3', 0, 0, 0, 4}
)

func appendClose(b []byte, kind byte, name string) []byte {
	b = append(b, 'C')
	b = binary.BigEndian.AppendUint32(b, uint32(4+1+len(name)+1))
	b = append(b, kind)
	b = append(b, name...)
	return append(b, 0)
}

// queue is a FIFO of requests that reuses its storage.
type queue struct {
	buf []request
	h   int
}

func (q *queue) len() int          { return len(q.buf) - q.h }
func (q *queue) at(i int) *request { return &q.buf[q.h+i] }
func (q *queue) push(r request)    { q.buf = append(q.buf, r) }
func (q *queue) reset()            { q.popFront(q.len()) }

func (q *queue) popFront(n int) {
	clear(q.buf[q.h : q.h+n])
	q.h += n
	switch {
	case q.h == len(q.buf):
		q.buf, q.h = q.buf[:0], 0
	case q.h > 64 && q.h > len(q.buf)/2:
		k := copy(q.buf, q.buf[q.h:])
		clear(q.buf[k:])
		q.buf, q.h = q.buf[:k], 0
	}
}
