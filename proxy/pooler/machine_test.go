package pooler

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// msg builds a wire message of type t with body parts joined by NUL.
func msg(t byte, body ...string) []byte {
	var b []byte
	for _, p := range body {
		b = append(b, p...)
		b = append(b, 0)
	}
	out := []byte{t}
	out = binary.BigEndian.AppendUint32(out, uint32(4+len(b)))
	return append(out, b...)
}

func query(sql string) []byte       { return msg('Q', sql) }
func parse(name, sql string) []byte { return msg('P', name, sql+"\x00\x00") }
func rfq(status byte) []byte        { return []byte{'Z', 0, 0, 0, 5, status} }

var (
	syncMsg  = []byte{'S', 0, 0, 0, 4}
	flushMsg = []byte{'H', 0, 0, 0, 4}
	bind     = msg('B', "", "\x00\x00\x00\x00\x00\x00")
	execute  = msg('E', "\x00\x00\x00\x00")
	complete = msg('C', "SELECT 1")
)

func errMsg(severity string) []byte {
	return msg('E', "S"+severity, "V"+severity, "C08006", "Mboom", "")
}

// attach feeds m a Need and attaches a server with settings server.
func attach(t *testing.T, m *Machine, first []byte, server map[string]string) Step {
	t.Helper()
	if st := m.Client(first); !st.Need {
		t.Fatalf("first message of a transaction: %+v, want Need", st)
	}
	var tag uint64
	if setup := m.Attach(server, &tag, new(any)); setup != nil {
		t.Fatalf("unexpected setup %q", setup)
	}
	return m.Client(first)
}

func defaults() map[string]string {
	return map[string]string{"server_version": "15.18", "DateStyle": "ISO, MDY", "TimeZone": "UTC",
		"application_name": "", "client_encoding": "UTF8"}
}

func TestTransactionBoundaries(t *testing.T) {
	m := New(Transaction, defaults())
	sv := defaults()
	if st := attach(t, m, query("BEGIN"), sv); !st.Forward || !st.Flush {
		t.Fatalf("BEGIN: %+v", st)
	}
	if st := m.Server(rfq('T'), sv); !st.Forward || st.Release {
		t.Fatalf("ReadyForQuery T: %+v", st)
	}
	m.Client(query("SELECT 1"))
	if st := m.Server(rfq('T'), sv); st.Release {
		t.Fatal("released inside a transaction")
	}
	m.Client(query("COMMIT"))
	if st := m.Server(rfq('I'), sv); !st.Release || m.Attached() {
		t.Fatalf("COMMIT: %+v attached=%v", st, m.Attached())
	}
	// Autocommit: one Query, one release.
	attach(t, m, query("SELECT 1"), sv)
	if st := m.Server(rfq('I'), sv); !st.Release {
		t.Fatal("autocommit query not released")
	}
}

// Several Syncs in flight: the server goes back only after the last
// ReadyForQuery; a Flush without Sync keeps it.
func TestPipelineAndFlush(t *testing.T) {
	m := New(Transaction, defaults())
	sv := defaults()
	attach(t, m, parse("", "SELECT 1"), sv)
	for _, c := range [][]byte{bind, execute, syncMsg, parse("", "SELECT 2"), bind, execute, syncMsg} {
		m.Client(c)
	}
	if st := m.Server(rfq('I'), sv); st.Release {
		t.Fatal("released with a Sync still outstanding")
	}
	if st := m.Server(rfq('I'), sv); !st.Release {
		t.Fatal("not released after the last Sync")
	}
	attach(t, m, parse("", "SELECT 3"), sv)
	m.Client(bind)
	m.Client(execute)
	if st := m.Client(flushMsg); !st.Flush || !st.Forward {
		t.Fatalf("Flush: %+v", st)
	}
	m.Server(complete, sv)
	if !m.Attached() || m.Clean() {
		t.Fatal("a batch without Sync must keep its server")
	}
	m.Client(syncMsg)
	if st := m.Server(rfq('I'), sv); !st.Release {
		t.Fatal("not released after Sync")
	}
}

// No server can be had: a Query gets the error and ReadyForQuery; an
// extended batch gets the error and, at its Sync, ReadyForQuery.
func TestFail(t *testing.T) {
	e := errMsg("ERROR")
	m := New(Transaction, nil)
	st := m.Fail(query("SELECT 1"), e)
	if !bytes.Equal(st.Reply, append(append([]byte{}, e...), rfq('I')...)) {
		t.Fatalf("Query: %q", st.Reply)
	}
	p := parse("", "SELECT 1")
	if st := m.Fail(p, e); !bytes.Equal(st.Reply, e) {
		t.Fatalf("Parse: %q", st.Reply)
	}
	for _, c := range [][]byte{bind, execute} {
		if st := m.Client(c); st.Need || st.Forward || st.Reply != nil {
			t.Fatalf("after a failed Parse, %c: %+v", c[0], st)
		}
	}
	if st := m.Client(syncMsg); !bytes.Equal(st.Reply, rfq('I')) {
		t.Fatalf("Sync: %q", st.Reply)
	}
	if st := m.Client(query("SELECT 2")); !st.Need {
		t.Fatal("the next request needs a server again")
	}
}

// A server lost while the client waits: the error and a ReadyForQuery per
// outstanding request. Lost while idle in a transaction: the client's
// next request gets the error. A server FATAL is not forwarded.
func TestLost(t *testing.T) {
	e := errMsg("ERROR")
	sv := defaults()
	m := New(Transaction, defaults())
	attach(t, m, query("INSERT"), sv)
	m.Client(query("INSERT"))
	if st := m.Server(errMsg("FATAL"), sv); !st.Fatal || st.Forward {
		t.Fatalf("server FATAL: %+v", st)
	}
	reply, end := m.Lost(e)
	want := append(append(append([]byte{}, e...), rfq('I')...), rfq('I')...)
	if end || !bytes.Equal(reply, want) || m.Attached() {
		t.Fatalf("lost with 2 pending: end=%v reply=%q", end, reply)
	}

	attach(t, m, query("BEGIN"), sv)
	m.Server(rfq('T'), sv)
	if !m.InTransaction() {
		t.Fatal("not idle in transaction")
	}
	if reply, end := m.Lost(e); reply != nil || end {
		t.Fatalf("lost idle in transaction: %q %v", reply, end)
	}
	if st := m.Client(query("COMMIT")); !bytes.Equal(st.Reply, append(append([]byte{}, e...), rfq('I')...)) {
		t.Fatalf("COMMIT after the loss: %+v", st)
	}
	if st := m.Client(query("SELECT 1")); !st.Need {
		t.Fatal("the client goes on after the lost transaction")
	}

	s := New(Session, nil)
	var tag uint64
	s.Attach(defaults(), &tag, new(any))
	if _, end := s.Lost(e); !end {
		t.Fatal("session mode: a lost server ends the client")
	}
	if st := s.Server(errMsg("FATAL"), sv); !st.Forward {
		t.Fatal("session mode forwards the server's FATAL")
	}
}

// Settings follow the client: a server whose settings differ gets one
// setup query first; ParameterStatus updates the client's settings; an
// extra a previous client set is reset.
func TestSettingsFollow(t *testing.T) {
	want := defaults()
	want["TimeZone"] = "Asia/Tokyo"
	want["extra_float_digits"] = "3"
	m := New(Transaction, want)
	sv := defaults()
	sv["work_mem"] = "64MB" // set for a previous client (an extra)
	m.Client(query("SELECT 1"))
	var tag uint64
	setup := m.Attach(sv, &tag, new(any))
	got := string(setup)
	for _, part := range []string{"set_config('TimeZone','Asia/Tokyo',false)", "set_config('extra_float_digits','3',false)", `RESET "work_mem"`} {
		if !bytes.Contains(setup, []byte(part)) {
			t.Errorf("setup %q lacks %s", got, part)
		}
	}
	if bytes.Contains(setup, []byte("DateStyle")) {
		t.Errorf("setup %q re-applies an equal setting", got)
	}
	if !m.Busy() {
		t.Fatal("the setup's answer is owed")
	}
	for _, r := range [][]byte{msg('T'), msg('S', "TimeZone", "Asia/Tokyo"), msg('C', "SELECT 1"), rfq('I')} {
		if st := m.Server(r, sv); st.Forward || st.Release {
			t.Fatalf("setup answer %c forwarded: %+v", r[0], st)
		}
	}
	if sv["TimeZone"] != "Asia/Tokyo" || sv["extra_float_digits"] != "3" || sv["work_mem"] != "" {
		t.Fatalf("server settings after setup: %v", sv)
	}
	m.Client(query("SET DateStyle = 'SQL, DMY'"))
	if st := m.Server(msg('S', "DateStyle", "SQL, DMY"), sv); !st.Forward {
		t.Fatal("ParameterStatus not forwarded")
	}
	m.Server(rfq('I'), sv)
	if m.Settings()["DateStyle"] != "SQL, DMY" || m.Pinned() != "" {
		t.Fatalf("DateStyle did not follow: %v pinned=%q", m.Settings(), m.Pinned())
	}
}

func TestSetupQuoting(t *testing.T) {
	if got := quoteLiteral(`it's`); got != `'it''s'` {
		t.Error(got)
	}
	if got := quoteLiteral(`a\b`); got != `E'a\\b'` {
		t.Error(got)
	}
}

func TestStartupSettings(t *testing.T) {
	got, bad := StartupSettings(map[string]string{"user": "u", "database": "d", "datestyle": "ISO",
		"options": `-c statement_timeout=5s --work-mem=8MB -csearch_path=a\ b`, "_pq_.x": "1"})
	if bad != "" {
		t.Fatal(bad)
	}
	want := map[string]string{"DateStyle": "ISO", "statement_timeout": "5s", "work_mem": "8MB", "search_path": "a b"}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (%v)", k, got[k], v, got)
		}
	}
	if _, bad := StartupSettings(map[string]string{"options": "-B 100"}); bad == "" {
		t.Error("a server option that is not a setting must be refused")
	}
}

// A reset puts a server back to the settings it logged in with, not to
// the client's startup settings (applied with set_config): in either
// mode, the client is told its startup value, which is applied again
// before its next request, as PostgreSQL would have it.
func TestResetReturnsToStartup(t *testing.T) {
	for _, mode := range []Mode{Transaction, Session} {
		for _, reset := range []string{"RESET TimeZone", "SET TIME ZONE DEFAULT", "RESET statement_timeout", "RESET ALL"} {
			want := defaults()
			want["TimeZone"], want["statement_timeout"] = "America/New_York", "4321"
			m := New(mode, want)
			m.Startup(map[string]string{"TimeZone": "America/New_York", "statement_timeout": "4321"})
			sv := defaults() // as login's setup left it
			sv["TimeZone"], sv["statement_timeout"] = "America/New_York", "4321"
			if st := attach(t, m, query(reset), sv); !st.Forward || st.Pinned != "" {
				t.Fatalf("%v %s: %+v", mode, reset, st)
			}
			if strings.Contains(reset, "TimeZone") || strings.Contains(reset, "TIME") || strings.Contains(reset, "ALL") {
				m.Server(msg('S', "TimeZone", "UTC"), sv) // the server's own default
			}
			m.Server(msg('C', "RESET"), sv)
			st := m.Server(rfq('I'), sv)
			if tz := appendParameterStatus(nil, "TimeZone", "America/New_York"); (reset != "RESET statement_timeout") != bytes.Contains(st.Before, tz) {
				t.Errorf("%v %s: the client is owed %q", mode, reset, st.Before)
			}
			if got := m.Settings()["TimeZone"]; got != "America/New_York" {
				t.Errorf("%v %s: the client's TimeZone is %q", mode, reset, got)
			}
			var setup []byte
			if mode == Transaction {
				if !st.Release {
					t.Fatalf("%v %s: not released", mode, reset)
				}
				m.Client(query("SELECT 1"))
				var tag uint64
				setup = m.Attach(sv, &tag, new(any))
			} else {
				setup = m.Client(query("SELECT 1")).Send
			}
			for _, part := range []string{"set_config('TimeZone','America/New_York',false)", "set_config('statement_timeout','4321',false)"} {
				if strings.Contains(reset, "statement_timeout") == strings.Contains(part, "statement_timeout") || reset == "RESET ALL" {
					if !bytes.Contains(setup, []byte(part)) {
						t.Errorf("%v %s: the next request's setup %q lacks %s", mode, reset, setup, part)
					}
				}
			}
		}
	}
}
