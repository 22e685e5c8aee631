// Package pooler is the protocol logic of a pooled client, with no I/O in
// it: fed the client's and the server's messages, it says what to
// forward, what to answer itself, and when a server is needed or may go
// back to the pool. proxy carries its decisions out on sockets.
//
// Messages are whole wire messages: a type byte, a length word, a body.
package pooler

import (
	"hash/fnv"
	"strings"
)

// Mode is a listener's pool mode.
type Mode uint8

const (
	Session     Mode = iota // one server for the client's whole life
	Transaction             // a server per transaction
)

// Step is what to do with a message from the client.
type Step struct {
	// Need: no server is attached; check one out, call Attach, then feed
	// the same message again.
	Need bool
	// Forward the message to the server; Flush means the client now
	// waits for an answer, so what is buffered for the server must go.
	Forward, Flush bool
	// Send, when set, goes to the server instead of the message: the
	// message rewritten, after requests of Switchyard's own. It is valid
	// until the next call.
	Send []byte
	// Reply is sent to the client instead (nothing is forwarded).
	Reply []byte
	// Terminate: the client said goodbye.
	Terminate bool
	// Pinned is set the moment the client gets pinned to its server, to
	// say why.
	Pinned string
}

// ServerStep is what to do with a message from the server.
type ServerStep struct {
	Forward bool // send it to the client
	// Send, when set, goes to the client instead of the message.
	Send []byte
	// Before and After go to the client before and after the message,
	// whether or not it is forwarded: answers of Switchyard's own whose
	// turn came. Send, Before and After are valid until the next call.
	Before, After []byte
	// Release: the transaction is over; after forwarding (and flushing)
	// the message, the server goes back to the pool, clean.
	Release bool
	// SetupFailed holds the ErrorResponse of Switchyard's own setup query
	// (re-applying the client's settings), for the log.
	SetupFailed []byte
	// Fatal: in transaction mode the server is ending its session (a
	// FATAL ErrorResponse, such as 57P01 on a shutdown). The client does
	// not get it, which would end its connection too: the server is lost
	// (see Lost), and the client only loses its transaction.
	Fatal bool
}

// Machine is one pooled client's protocol state. It is not safe for
// concurrent use; the caller serialises its calls.
type Machine struct {
	mode    Mode
	want    map[string]string // the client's settings
	startup map[string]string // those it asked for at login, what RESET ALL returns to (see Startup)
	server  map[string]string // the attached server's settings

	attached bool
	pinned   string
	pending  int  // Query, Sync and FunctionCall not yet answered by ReadyForQuery
	batch    bool // extended-protocol messages sent since the last Sync
	hidden   int  // ReadyForQuery still owed to Switchyard's own queries
	hiddenE  []byte
	status   byte // transaction status of the last ReadyForQuery
	skip     bool // dropping the client's messages until Sync, after an error answered here
	lost     []byte

	searchPath bool // the server reports search_path

	ps *prepared // protocol-level prepared statements; nil: not tracked

	changes       []change // setting changes of the request under way (settings.go)
	changesFailed bool     // ... which met an error
	resync        bool     // the server's settings are not the client's: set them before its next request
	scratch       []byte

	fp  uint64  // fingerprint of want; 0 = not computed
	tag *uint64 // the attached server's tag
}

// New returns the state of a client of mode that asked for the settings
// in want (see StartupSettings); the machine owns want from now on.
func New(mode Mode, want map[string]string) *Machine {
	if want == nil {
		want = map[string]string{}
	}
	return &Machine{mode: mode, want: want, status: 'I'}
}

// Startup records the settings the client asked for at login (see
// StartupSettings), which RESET ALL returns it to; without them, it
// returns to the server's. The machine keeps the map.
func (m *Machine) Startup(settings map[string]string) { m.startup = settings }

// TrackStatements makes a transaction-mode client's prepared statements
// follow it from server to server, shared through reg, each server
// keeping at most max (max_prepared_statements; 0: not tracked, and a
// named statement pins the client).
func (m *Machine) TrackStatements(reg *Registry, max int) {
	if m.mode == Transaction && max > 0 && reg != nil {
		m.ps = newPrepared(reg, max)
	}
}

// Close lets go of the client's prepared statements; call it when the
// client has left.
func (m *Machine) Close() {
	if m.ps != nil {
		m.ps.close()
	}
}

// Statements is the number of prepared statements the client holds.
func (m *Machine) Statements() int {
	if m.ps == nil {
		return 0
	}
	return len(m.ps.names)
}

// Settings are the client's settings as it was last told them.
func (m *Machine) Settings() map[string]string { return m.want }

// Attached reports whether a server is attached.
func (m *Machine) Attached() bool { return m.attached }

// Pinned says why the client is pinned to its server ("" if it is not).
func (m *Machine) Pinned() string { return m.pinned }

// Busy reports whether the attached server owes the client an answer.
func (m *Machine) Busy() bool { return m.pending > 0 || m.hidden > 0 }

// Clean reports whether the attached server may serve another client as
// it is: no request outstanding and no transaction open.
func (m *Machine) Clean() bool {
	return m.pending == 0 && m.hidden == 0 && !m.batch && m.status == 'I' && (m.ps == nil || m.ps.q.len() == 0)
}

// InTransaction reports whether the client holds a server inside a
// transaction block and owes it the next request (idle in transaction).
func (m *Machine) InTransaction() bool { return m.attached && !m.Busy() && !m.Clean() }

// Attach records that a server with settings server (its reported
// parameters and what Switchyard set on it; updated in place) is now the
// client's, and returns a Query to send before anything else, or nil.
// tag is the fingerprint of the settings the server's last client left
// it with (0: unknown); when it is this client's, there is nothing to
// compare or set. Release leaves the client's fingerprint in it.
// statements holds what the server has prepared (a *Statements, which
// Attach creates when it is nil and statements are tracked).
func (m *Machine) Attach(server map[string]string, tag *uint64, statements *any) []byte {
	m.attached = true
	m.status = 'I'
	m.tag = tag
	m.server = server
	m.resync = false
	if m.ps != nil {
		sv, _ := (*statements).(*Statements)
		if sv == nil {
			sv = newStatements(m.ps.max)
			*statements = sv
		}
		m.ps.attach(sv)
	}
	if *tag != 0 && *tag == m.fingerprint() {
		return nil
	}
	m.searchPath = reportsSearchPath(server["server_version"])
	m.fp = 0
	sql := setup(m.want, server)
	if sql == "" {
		return nil
	}
	m.hidden++
	return appendQuery(nil, sql)
}

// fingerprint sums a hash of every setting a client can change: equal
// fingerprints mean a server already has this client's settings.
func (m *Machine) fingerprint() uint64 {
	if m.fp != 0 {
		return m.fp
	}
	var sum uint64
	for k, v := range m.want {
		if readOnly[k] {
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(strings.ToLower(v)))
		sum += h.Sum64()
	}
	m.fp = sum | 1
	return m.fp
}

// detach leaves the server, noting in its tag the settings it now has.
func (m *Machine) detach() {
	m.attached = false
	if m.ps != nil {
		m.ps.detach()
	}
	if m.tag != nil {
		*m.tag = m.fingerprint()
		if m.resync { // the server has settings of its own
			*m.tag = 0
		}
		m.tag = nil
	}
}

// Release gives the server back between transactions, when the client is
// not pinned and nothing is outstanding (after login, in transaction
// mode); it reports whether it did.
func (m *Machine) Release() bool {
	if m.mode != Transaction || m.pinned != "" || !m.Clean() {
		return false
	}
	m.detach()
	return true
}

// Client judges a message from the client.
func (m *Machine) Client(msg []byte) Step {
	t := msg[0]
	if t == 'X' {
		return Step{Terminate: true}
	}
	if !m.attached {
		if st, done := m.detached(msg); done {
			return st
		}
		return Step{Need: true}
	}
	var st Step
	var sql string // a Query's, read once
	resync := m.resync && m.Clean()
	if resync && m.ps != nil {
		m.ps.unnamedHere = false // the settings Query will drop the unnamed statement
	}
	switch t {
	case 'Q':
		sql = queryText(msg)
		st.Pinned = m.pin(sql, true)
	case 'P':
		st.Pinned = m.pin(parseText(msg, m.ps != nil), len(msg) > 5 && msg[5] == 0)
	}
	if m.ps != nil {
		var drop bool
		if st.Send, drop = m.ps.client(msg, sql, m.fingerprint()); drop {
			m.batch = true // answered in turn, or skipped as the server skips it
			if t == 'Q' {
				m.changes = nil // skipped
			}
			return st
		}
	}
	if resync {
		// A RESET left the server with settings that are not the
		// client's: set them first.
		m.resync = false
		if sql := setup(m.want, m.server); sql != "" {
			m.hidden++
			m.scratch = appendQuery(m.scratch[:0], sql)
			if st.Send != nil {
				m.scratch = append(m.scratch, st.Send...)
			} else {
				m.scratch = append(m.scratch, msg...)
			}
			st.Send = m.scratch
		}
	}
	st.Forward = true
	switch t {
	case 'Q':
		m.pending++
		st.Flush = true
	case 'P', 'B', 'D', 'E', 'C':
		m.batch = true
	case 'S':
		m.batch = false
		m.pending++
		st.Flush = true
	case 'F':
		m.pending++
		st.Flush = true
	case 'H', 'c', 'f':
		st.Flush = true
	}
	return st
}

// detached answers what needs no server; done is false when one is
// needed.
func (m *Machine) detached(msg []byte) (Step, bool) {
	t := msg[0]
	switch {
	case m.skip:
		if t == 'S' {
			m.skip = false
			return Step{Reply: readyForQuery('I')}, true
		}
		return Step{}, true
	case m.lost != nil:
		// The client's transaction died with its server: this request
		// fails, and the client is told it is out of the transaction.
		e := m.lost
		m.lost = nil
		return m.failed(t, e), true
	case t == 'S':
		return Step{Reply: readyForQuery('I')}, true
	case t == 'H', t == 'd', t == 'c', t == 'f':
		// Nothing is buffered anywhere; COPY messages outside COPY are
		// ignored, as PostgreSQL ignores them.
		return Step{}, true
	case t == 'P' && m.ps != nil && sessionState(parseText(msg, true), m.searchPath) == "" &&
		m.ps.parseDetached(msg, m.fingerprint()):
		return Step{Reply: parseComplete}, true
	case t == 'C' && m.ps != nil:
		// No transaction is open, so no portal; a statement is the
		// client's to forget.
		return Step{Reply: m.ps.closeDetached(msg)}, true
	}
	return Step{}, false
}

// Fail answers the message that asked for a server (Need) when none
// could be had: errMsg (an ErrorResponse), then ReadyForQuery for a
// Query or FunctionCall; after an extended-protocol message, the rest of
// the batch is dropped up to its Sync, as PostgreSQL does after an error.
func (m *Machine) Fail(msg, errMsg []byte) Step { return m.failed(msg[0], errMsg) }

func (m *Machine) failed(t byte, errMsg []byte) Step {
	switch t {
	case 'Q', 'F', 'S':
		return Step{Reply: append(append([]byte(nil), errMsg...), readyForQuery('I')...)}
	}
	m.skip = true
	return Step{Reply: errMsg}
}

// Server judges a message from the attached server, whose settings are
// server (updated in place from ParameterStatus).
func (m *Machine) Server(msg []byte, server map[string]string) ServerStep {
	t := msg[0]
	if t == 'S' {
		if k, v, ok := parameterStatus(msg); ok {
			server[k] = v
			m.want[k] = v
			m.fp = 0
		}
	}
	if m.hidden > 0 {
		switch t {
		case 'E':
			m.hiddenE = append([]byte(nil), msg...)
		case 'Z':
			m.hidden--
			if e := m.hiddenE; m.hidden == 0 && e != nil {
				m.hiddenE = nil
				return ServerStep{SetupFailed: e}
			}
		}
		return ServerStep{}
	}
	if t == 'E' && m.mode == Transaction && m.pinned == "" && fatal(msg) {
		return ServerStep{Fatal: true}
	}
	if t == 'E' && m.changes != nil {
		m.changesFailed = true
	}
	st := ServerStep{Forward: true}
	if m.ps != nil {
		st.Before, st.Forward, st.Send, st.After = m.ps.server(msg)
		if !st.Forward { // the answer to a request of Switchyard's own
			return st
		}
	}
	if t != 'Z' || len(msg) < 6 {
		return st
	}
	m.pending = max(m.pending-1, 0)
	m.status = msg[5]
	if m.changes != nil {
		st.Before = append(st.Before, m.settled(server)...)
	}
	if m.mode == Transaction && m.pinned == "" && m.Clean() {
		m.detach()
		st.Release = true
	}
	return st
}

// Lost records that the attached server is gone (it died, or its member
// lost its role while the client was idle in a transaction), with
// errMsg, an ErrorResponse saying so. It returns what the client must be
// sent now, and end when the client cannot go on (session mode, or pinned
// to the server that is gone).
//
// A client waiting for answers gets errMsg and ReadyForQuery for what it
// waits on; a client idle in a transaction gets errMsg at its next
// request. Either way it is out of the transaction and keeps its
// connection.
func (m *Machine) Lost(errMsg []byte) (reply []byte, end bool) {
	if m.mode == Session || m.pinned != "" {
		return nil, true
	}
	wasIdleInTx := m.pending == 0 && !m.batch && m.status != 'I'
	if m.pending > 0 {
		reply = append(reply, errMsg...)
		for range m.pending {
			reply = append(reply, readyForQuery('I')...)
		}
	} else if m.batch {
		reply = append(reply, errMsg...)
	}
	m.skip = m.batch
	if wasIdleInTx {
		m.lost = append([]byte(nil), errMsg...)
	}
	m.attached, m.pending, m.batch, m.hidden, m.hiddenE, m.status = false, 0, false, 0, nil, 'I'
	m.tag = nil // the server is gone
	if m.ps != nil {
		m.ps.detach()
	}
	return reply, false
}

// pin pins the client when sql leaves state behind on the server, unless
// it only changes settings, in a request of its own (standalone: a Query
// or an unnamed Parse) outside a transaction block: those follow.
//
// A RESET (or RESET ALL, DISCARD ALL) puts a server back to the settings
// it logged in with, which are not the client's startup settings: those
// were applied with set_config. So a reset, which needs no pin, is
// recorded the same way, in every mode, and the client's startup value
// is applied again (settings.go).
func (m *Machine) pin(sql string, standalone bool) string {
	bound := m.mode != Transaction || m.pinned != "" // the server is the client's for good
	if bound && len(m.startup) == 0 {
		return "" // a reset leaves what the client logged in with
	}
	why, resets := scanSessionState(sql, m.searchPath)
	if why == "" && !resets {
		return ""
	}
	track := standalone && m.status == 'I' && m.pending == 0 && m.changes == nil
	if bound {
		if track {
			if c, ok := followable(sql, m.searchPath); ok {
				m.changes = onlyResets(c)
			}
		}
		return ""
	}
	if track {
		if c, ok := followable(sql, m.searchPath); ok {
			m.changes = c
			return ""
		}
	}
	if why != "" {
		m.pinned = why
	}
	return why
}

// onlyResets keeps the resets among changes: a client bound to its
// server keeps what it SETs there.
func onlyResets(changes []change) []change {
	var out []change
	for _, c := range changes {
		if c.reset || c.all {
			out = append(out, c)
		}
	}
	return out
}

// settled applies the setting changes of the request that just ended
// (ReadyForQuery) and returns ParameterStatus the client is owed. A
// change that met an error did not happen, except a RESET ALL among
// several statements, which may have: then what the server has is not
// known, and the client's settings are set afresh before its next
// request.
func (m *Machine) settled(server map[string]string) []byte {
	c, failed := m.changes, m.changesFailed
	m.changes, m.changesFailed = nil, false
	if !failed {
		return m.apply(c, server, false)
	}
	for _, ch := range c {
		if ch.all {
			return m.apply([]change{ch}, server, true)
		}
	}
	return nil
}
