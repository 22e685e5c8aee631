package pooler

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// A server connection as the proxy keeps it between clients.
type testServer struct {
	params map[string]string
	tag    uint64
	stmts  any
}

func newTestServer() *testServer { return &testServer{params: defaults()} }

func (s *testServer) statements() *Statements { st, _ := s.stmts.(*Statements); return st }

// tracked returns a transaction-mode client sharing reg, max statements
// per server.
func tracked(reg *Registry, max int) *Machine {
	m := New(Transaction, defaults())
	m.TrackStatements(reg, max)
	return m
}

// run feeds m the client message c, attaching sv when it needs a server,
// and returns what goes to the server.
func run(t *testing.T, m *Machine, sv *testServer, c []byte) []byte {
	t.Helper()
	st := m.Client(c)
	if st.Need {
		if setup := m.Attach(sv.params, &sv.tag, &sv.stmts); setup != nil {
			m.Server(rfq('I'), sv.params) // the setup's answer
		}
		st = m.Client(c)
	}
	switch {
	case !st.Forward:
		return nil
	case st.Send != nil:
		return append([]byte(nil), st.Send...)
	default:
		return c
	}
}

// answer feeds m the server messages and returns what reaches the client.
func answer(m *Machine, sv *testServer, msgs ...[]byte) []byte {
	var out []byte
	for _, s := range msgs {
		st := m.Server(s, sv.params)
		out = append(out, st.Before...)
		if st.Forward {
			if st.Send != nil {
				out = append(out, st.Send...)
			} else {
				out = append(out, s...)
			}
		}
		out = append(out, st.After...)
	}
	return out
}

// sent lists the messages of a stream to the server, with the statement
// name of each Parse, Bind, Describe and Close.
func sent(b []byte) string {
	var out []string
	for len(b) >= 5 {
		n := int(binary.BigEndian.Uint32(b[1:])) + 1
		w := string(b[0])
		switch b[0] {
		case 'P':
			name, _, _ := cut(b[5:n])
			w += "(" + string(name) + ")"
		case 'B':
			_, rest, _ := cut(b[5:n])
			name, _, _ := cut(rest)
			w += "(" + string(name) + ")"
		case 'D', 'C':
			name, _, _ := cut(b[6:n])
			w += string(b[5]) + "(" + string(name) + ")"
		}
		out = append(out, w)
		b = b[n:]
	}
	return strings.Join(out, " ")
}

// types lists the message types of a stream to the client.
func types(b []byte) string {
	var out []string
	for len(b) >= 5 {
		n := int(binary.BigEndian.Uint32(b[1:])) + 1
		out = append(out, string(b[0]))
		b = b[n:]
	}
	return strings.Join(out, " ")
}

func bindOf(name string) []byte { return msg('B', "", name+"\x00\x00\x00\x00\x00\x00\x00") }
func closeOf(name string) []byte {
	return append([]byte{'C', 0, 0, 0, byte(4 + 1 + len(name) + 1), 'S'}, append([]byte(name), 0)...)
}

var (
	bindComplete = []byte{'2', 0, 0, 0, 4}
	row          = msg('D', "\x00\x01\x00\x00\x00\x011")
)

// A client's named statement goes to the server under a shared name; a
// second client's Parse of the same text is answered by Switchyard,
// without a server once one has prepared it (in its turn when a server is
// attached: TestPreparedAnsweredInTurn).
func TestPreparedShared(t *testing.T) {
	reg := NewRegistry()
	sv := newTestServer()
	a, b := tracked(reg, 10), tracked(reg, 10)

	if got := sent(run(t, a, sv, parse("q", "SELECT 1"))); got != "P(SWITCHYARD_1)" {
		t.Fatalf("a's Parse goes as %s", got)
	}
	if got := sent(run(t, a, sv, bindOf("q"))); got != "B(SWITCHYARD_1)" {
		t.Fatalf("a's Bind goes as %s", got)
	}
	run(t, a, sv, execute)
	run(t, a, sv, syncMsg)
	if got := types(answer(a, sv, parseComplete, bindComplete, row, complete, rfq('I'))); got != "1 2 D C Z" {
		t.Fatalf("a gets %s", got)
	}
	if a.Attached() {
		t.Fatal("a keeps its server after ReadyForQuery")
	}

	// No server needed: a server has prepared it.
	if st := b.Client(parse("other", "SELECT 1")); !bytes.Equal(st.Reply, parseComplete) || st.Need {
		t.Fatalf("b's Parse of a known statement: %+v", st)
	}
	if got := sent(run(t, b, sv, bindOf("other"))); got != "B(SWITCHYARD_1)" {
		t.Fatalf("b's Bind goes as %s", got)
	}
	run(t, b, sv, execute)
	run(t, b, sv, syncMsg)
	if got := types(answer(b, sv, bindComplete, row, complete, rfq('I'))); got != "2 D C Z" {
		t.Fatalf("b gets %s", got)
	}
	if reg.Len() != 1 {
		t.Fatalf("registry holds %d statements, want 1", reg.Len())
	}
	a.Close()
	b.Close()
	if reg.Len() != 0 {
		t.Fatalf("registry holds %d statements after both clients left", reg.Len())
	}
}

// A Parse of a statement the attached server has is answered in its
// turn: after what the server owes before it, with a harmless request of
// Switchyard's own when only a Flush would carry it.
func TestPreparedAnsweredInTurn(t *testing.T) {
	reg := NewRegistry()
	sv := newTestServer()
	a, b := tracked(reg, 10), tracked(reg, 10)
	run(t, a, sv, parse("q", "SELECT 1"))
	run(t, a, sv, syncMsg)
	answer(a, sv, parseComplete, rfq('I'))

	run(t, b, sv, query("BEGIN")) // b holds sv
	answer(b, sv, rfq('T'))
	if got := sent(run(t, b, sv, bindOf("x"))); got != "B(x)" {
		t.Fatalf("Bind of an unknown statement goes as %s", got)
	}
	if out := run(t, b, sv, parse("other", "SELECT 1")); out != nil {
		t.Fatalf("Parse of a statement the server has went to it: %s", sent(out))
	}
	if got := sent(run(t, b, sv, flushMsg)); got != "H" {
		t.Fatalf("Flush with the server owing an answer goes as %s", got)
	}
	e := msg('E', "SERROR", "C26000", "Mno", "")
	if got := types(answer(b, sv, e)); got != "E" {
		t.Fatalf("b gets %s; the ParseComplete after the failed Bind must be dropped", got)
	}
	if b.Statements() != 0 {
		t.Fatal("a Parse skipped after an error must not create its name")
	}
	run(t, b, sv, syncMsg)
	answer(b, sv, rfq('T'))
	run(t, b, sv, parse("other", "SELECT 1"))
	if got := sent(run(t, b, sv, flushMsg)); got != "CP(SWITCHYARD_FLUSH) H" {
		t.Fatalf("Flush with only answers of ours queued goes as %s", got)
	}
	if got := types(answer(b, sv, closeComplete)); got != "1" {
		t.Fatalf("b gets %s, want its ParseComplete alone", got)
	}
}

// On a server that lacks the client's statement, a Parse of Switchyard's
// own goes first, and its answer is not the client's.
func TestPreparedFollowsClient(t *testing.T) {
	reg := NewRegistry()
	one, two := newTestServer(), newTestServer()
	m := tracked(reg, 10)
	run(t, m, one, parse("q", "SELECT 1"))
	run(t, m, one, syncMsg)
	answer(m, one, parseComplete, rfq('I'))

	if got := sent(run(t, m, two, bindOf("q"))); got != "P(SWITCHYARD_1) B(SWITCHYARD_1)" {
		t.Fatalf("on a new server the Bind goes as %s", got)
	}
	run(t, m, two, execute)
	run(t, m, two, syncMsg)
	if got := types(answer(m, two, parseComplete, bindComplete, row, complete, rfq('I'))); got != "2 D C Z" {
		t.Fatalf("client gets %s", got)
	}
	// The unnamed statement follows too, until a Query drops it.
	run(t, m, one, parse("", "SELECT 2"))
	run(t, m, one, syncMsg)
	answer(m, one, parseComplete, rfq('I'))
	if got := sent(run(t, m, two, bindOf(""))); got != "P() B()" {
		t.Fatalf("unnamed Bind on a new server goes as %s", got)
	}
	run(t, m, two, syncMsg)
	if got := types(answer(m, two, parseComplete, bindComplete, rfq('I'))); got != "2 Z" {
		t.Fatalf("client gets %s", got)
	}
}

// A full server closes its least recently used statement before
// preparing another, never one the batch under way uses.
func TestPreparedEviction(t *testing.T) {
	reg := NewRegistry()
	sv := newTestServer()
	m := tracked(reg, 2)
	for i, q := range []string{"SELECT 1", "SELECT 2", "SELECT 3"} {
		name := string(rune('a' + i))
		out := sent(run(t, m, sv, parse(name, q)))
		run(t, m, sv, syncMsg)
		if i == 2 && out != "CS(SWITCHYARD_1) P(SWITCHYARD_3)" {
			t.Fatalf("third Parse goes as %s", out)
		}
		var replies [][]byte
		if strings.HasPrefix(out, "C") {
			replies = append(replies, closeComplete)
		}
		if got := types(answer(m, sv, append(replies, parseComplete, rfq('I'))...)); got != "1 Z" {
			t.Fatalf("client gets %s", got)
		}
	}
	if n := sv.statements().Len(); n != 2 {
		t.Fatalf("server has %d statements, want 2", n)
	}
	// One batch using all three: "a" comes back, and nothing it uses is
	// evicted, so the server holds three until the next Parse.
	for _, c := range [][]byte{bindOf("a"), bindOf("b"), bindOf("c")} {
		run(t, m, sv, c)
	}
	if n := sv.statements().Len(); n != 3 {
		t.Fatalf("server has %d statements, want 3 while one batch uses them", n)
	}
}

// An error skips the rest of the batch: answers of Switchyard's own queued
// behind it are dropped, and what they assumed is undone.
func TestPreparedErrorSkipsBatch(t *testing.T) {
	reg := NewRegistry()
	sv := newTestServer()
	m := tracked(reg, 10)
	run(t, m, sv, parse("a", "SELECT 1"))
	run(t, m, sv, syncMsg)
	answer(m, sv, parseComplete, rfq('I'))

	b := tracked(reg, 10)
	run(t, b, sv, query("SELECT 1/0"))    // fails
	run(t, b, sv, parse("x", "SELEC"))    // fails
	run(t, b, sv, parse("y", "SELECT 1")) // on the server: answered here, but skipped
	run(t, b, sv, closeOf("never"))       // skipped
	run(t, b, sv, syncMsg)                // ...
	got := types(answer(b, sv, errMsg("ERROR"), rfq('I'), errMsg("ERROR"), rfq('I')))
	if got != "E Z E Z" {
		t.Fatalf("client gets %s", got)
	}
	if b.Statements() != 0 {
		t.Fatalf("client holds %d statements after a failed batch", b.Statements())
	}
	if !bytes.Equal(run(t, b, sv, bindOf("y")), bindOf("y")) {
		t.Fatal("a Bind of a statement that was never made must reach the server as it is")
	}
}

// The server's 42P05 for a name in use names the client's statement.
func TestPreparedNameInUse(t *testing.T) {
	reg := NewRegistry()
	sv := newTestServer()
	m := tracked(reg, 10)
	run(t, m, sv, parse("a", "SELECT 1"))
	run(t, m, sv, syncMsg)
	answer(m, sv, parseComplete, rfq('I'))
	run(t, m, sv, parse("a", "SELECT 2"))
	run(t, m, sv, syncMsg)
	e := msg('E', "SERROR", "C42P05", `Mprepared statement "SWITCHYARD_1" already exists`, "")
	got := answer(m, sv, e, rfq('I'))
	if !bytes.Contains(got, []byte(`prepared statement "a" already exists`)) {
		t.Fatalf("client gets %q", got)
	}
}

// With tracking off, a named Parse pins as before.
func TestUntrackedPins(t *testing.T) {
	m := New(Transaction, defaults())
	m.TrackStatements(NewRegistry(), 0)
	sv := newTestServer()
	m.Client(parse("a", "SELECT 1"))
	m.Attach(sv.params, &sv.tag, &sv.stmts)
	if st := m.Client(parse("a", "SELECT 1")); st.Pinned == "" || st.Send != nil {
		t.Fatalf("named Parse untracked: %+v", st)
	}
}

// preparedRound returns one round of the transaction-mode hot path: a
// Bind/Execute/Sync of a prepared statement and its answers, the server
// released and taken again.
func preparedRound() func() {
	reg := NewRegistry()
	sv := newTestServer()
	m := tracked(reg, 10)
	step := func(c []byte) {
		if st := m.Client(c); st.Need {
			m.Attach(sv.params, &sv.tag, &sv.stmts)
			m.Client(c)
		}
	}
	step(parse("q", "SELECT 1"))
	step(syncMsg)
	answer(m, sv, parseComplete, rfq('I'))
	bq := bindOf("q")
	return func() {
		step(bq)
		step(execute)
		step(syncMsg)
		for _, s := range [][]byte{bindComplete, row, complete, rfq('I')} {
			m.Server(s, sv.params)
		}
	}
}

// sessionRound is the same round in session mode, which pays nothing for
// statements.
func sessionRound() func() {
	sv := newTestServer()
	m := New(Session, defaults())
	m.Client(bind)
	m.Attach(sv.params, &sv.tag, &sv.stmts)
	bq := bindOf("q")
	return func() {
		m.Client(bq)
		m.Client(execute)
		m.Client(syncMsg)
		for _, s := range [][]byte{bindComplete, row, complete, rfq('I')} {
			m.Server(s, sv.params)
		}
	}
}

// The hot path allocates nothing per forwarded Bind/Execute (issue 9's
// goal, kept as a test so a change that allocates fails here).
func TestHotPathAllocatesNothing(t *testing.T) {
	for name, round := range map[string]func() func(){"transaction, prepared": preparedRound, "session": sessionRound} {
		f := round()
		f() // the first round may grow buffers
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %.1f allocations per Bind/Execute/Sync round, want 0", name, n)
		}
	}
}

func BenchmarkPreparedExecute(b *testing.B) {
	f := preparedRound()
	b.ReportAllocs()
	for b.Loop() {
		f()
	}
}

func BenchmarkSessionExecute(b *testing.B) {
	f := sessionRound()
	b.ReportAllocs()
	for b.Loop() {
		f()
	}
}

// Any order of client and server messages leaves the machine sane: no
// panic, and what the server owes never goes negative.
func FuzzPrepared(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 20, 21, 22, 23, 4, 24, 5, 6, 7, 25, 8, 9, 26, 27})
	f.Fuzz(func(t *testing.T, ops []byte) {
		reg := NewRegistry()
		servers := []*testServer{newTestServer(), newTestServer()}
		ms := []*Machine{tracked(reg, 2), tracked(reg, 2)}
		client := [][]byte{parse("a", "SELECT 1"), parse("b", "SELECT 2"), parse("", "SELECT 3"), bindOf("a"),
			bindOf("b"), bindOf(""), execute, syncMsg, flushMsg, closeOf("a"), closeOf(""), query("DEALLOCATE ALL"),
			query("DEALLOCATE a"), query("SELECT 1"), msg('D', "Sa"), msg('D', "P"), {'B', 0, 0, 0, 4}, {'P', 0, 0, 0, 4}}
		server := [][]byte{parseComplete, bindComplete, closeComplete, row, complete, rfq('I'), rfq('T'),
			msg('E', "SERROR", "C0A000", "Mcached plan must not change result type", ""), msg('E', "SERROR", "C42601", "Mx", ""),
			msg('C', "DISCARD ALL"), msg('n'), msg('T', "\x00\x00"), msg('t', "\x00\x00")}
		for i, op := range ops {
			k := i % 2
			m, sv := ms[k], servers[int(op>>7)]
			if op&0x7f < 20 {
				run(t, m, sv, client[int(op&0x7f)%len(client)])
			} else if m.Attached() {
				answer(m, sv, server[int(op&0x7f-20)%len(server)])
			}
			if m.ps.owed < 0 || m.ps.owed > m.ps.q.len() {
				t.Fatalf("owed %d with %d queued", m.ps.owed, m.ps.q.len())
			}
			if !m.Attached() && m.ps.q.len() != 0 {
				t.Fatalf("detached with %d requests queued", m.ps.q.len())
			}
		}
		for _, m := range ms {
			if m.Attached() {
				m.Lost(errMsg("ERROR"))
			}
			m.Close()
		}
		if n := reg.Len(); n != 0 {
			t.Fatalf("registry holds %d statements after every client left", n)
		}
	})
}
