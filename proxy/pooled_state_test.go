package proxy_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// Integration tests of what a transaction-pooled client's session state
// does: what pins it to its server, what follows it from server to
// server, and that nothing leaks to the next client.

// testCtx is a per-test context of 30 s.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// backendPID is the PID of the server running conn's transaction.
func backendPID(t *testing.T, ctx context.Context, c *pgconn.PgConn) string {
	t.Helper()
	return mustQuery(t, ctx, c, "SELECT pg_backend_pid()::text")[0]
}

// execSimple runs sql with the simple protocol and returns the first error.
func execSimple(ctx context.Context, c *pgconn.PgConn, sql string) error {
	_, err := c.Exec(ctx, sql).ReadAll()
	return err
}

func mustExec(t *testing.T, ctx context.Context, c *pgconn.PgConn, sql string) {
	t.Helper()
	if err := execSimple(ctx, c, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// superConn is a direct superuser connection to the primary.
func superConn(t *testing.T, ctx context.Context) *pgconn.PgConn {
	t.Helper()
	return connect(t, ctx, pg.Nodes[0].DSN(testbed.UserSuper))
}

// holder is a client of the tx listener holding a server in an open
// transaction.
type holder struct {
	c   *pgconn.PgConn
	pid string
}

// holdServers opens n clients, each in a transaction, so each holds one
// server of the pool; with a pool of n, every server.
func holdServers(t *testing.T, ctx context.Context, dsn string, n int) []*holder {
	t.Helper()
	var hs []*holder
	for i := 0; i < n; i++ {
		c := connect(t, ctx, dsn)
		mustQuery(t, ctx, c, "BEGIN")
		hs = append(hs, &holder{c: c, pid: backendPID(t, ctx, c)})
	}
	seen := map[string]bool{}
	for _, h := range hs {
		if seen[h.pid] {
			t.Fatalf("two clients in open transactions share backend %s", h.pid)
		}
		seen[h.pid] = true
	}
	return hs
}

func (h *holder) commit(t *testing.T, ctx context.Context) {
	t.Helper()
	mustQuery(t, ctx, h.c, "COMMIT")
}

func commitAll(t *testing.T, ctx context.Context, hs []*holder) {
	t.Helper()
	for _, h := range hs {
		h.commit(t, ctx)
	}
}

// steer holds every server of a pool of 2 but one: the one with pid (on
// = true) or the other one (on = false) is left free for the next
// transaction. It returns the holder that keeps the other server.
func steer(t *testing.T, ctx context.Context, dsn, pid string, on bool) *holder {
	t.Helper()
	hs := holdServers(t, ctx, dsn, 2)
	var keep, free *holder
	for _, h := range hs {
		if (h.pid == pid) == on {
			free = h
		} else {
			keep = h
		}
	}
	if keep == nil || free == nil {
		t.Fatalf("backend %s is not among the pool's servers %s, %s", pid, hs[0].pid, hs[1].pid)
	}
	free.commit(t, ctx)
	return keep
}

// pinCase is a statement that leaves session state behind, so it must
// pin its client to its server.
type pinCase struct {
	name     string
	sql      string                                                    // run with the simple protocol ...
	run      func(t *testing.T, ctx context.Context, c *pgconn.PgConn) // ... or this
	allowErr bool                                                      // the statement may fail (it pins anyway)
	// state is a query returning one text value: pinned on A's server
	// while A is connected, and anything but pinned for other clients.
	state, pinned string
	why           string // in the "client pinned" log line
	pool          string // more [pool] lines
}

var pinCases = []pinCase{
	// A SET of its own outside a transaction block follows the client
	// (TestPooledTrackedSettingsFollow); inside one, or of a list, it pins.
	{name: "SET in a transaction block", sql: "BEGIN; SET statement_timeout = '12345ms'; COMMIT", state: "SHOW statement_timeout", pinned: "12345ms", why: "statement_timeout"},
	{name: "SET SESSION in a transaction block", sql: "BEGIN; SET SESSION work_mem = '7778kB'; COMMIT", state: "SHOW work_mem", pinned: "7778kB", why: "work_mem"},
	{name: "SET search_path", sql: "SET search_path = pin_schema, public", state: "SHOW search_path", pinned: "pin_schema, public", why: "search_path"},
	{name: "SET of a dotted custom setting", sql: "SET myapp.tenant = '42'", state: "SELECT current_setting('myapp.tenant', true)", pinned: "42", why: "SET myapp"},
	{name: "SET ROLE", sql: "SET ROLE sy_pinrole", state: "SELECT current_user::text", pinned: "sy_pinrole", why: "SET role"},
	{name: "SET SESSION AUTHORIZATION", sql: "SET SESSION AUTHORIZATION " + testbed.UserSCRAM, why: "AUTHORIZATION"},
	{name: "LISTEN", sql: "LISTEN pin_chan", state: "SELECT coalesce(string_agg(c, ','), 'none') FROM pg_listening_channels() c", pinned: "pin_chan", why: "LISTEN"},
	{name: "pg_advisory_lock", sql: "SELECT pg_advisory_lock(4242)",
		state: "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND pid = pg_backend_pid()", pinned: "1", why: "pg_advisory_lock"},
	{name: "pg_try_advisory_lock", sql: "SELECT pg_try_advisory_lock(4243)",
		state: "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND objid = 4243 AND pid = pg_backend_pid()", pinned: "1", why: "pg_try_advisory_lock"},
	{name: "pg_advisory_lock_shared", sql: "SELECT pg_advisory_lock_shared(4244)",
		state: "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND objid = 4244 AND mode = 'ShareLock' AND pid = pg_backend_pid()", pinned: "1", why: "pg_advisory_lock_shared"},
	{name: "pg_try_advisory_lock_shared", sql: "SELECT pg_try_advisory_lock_shared(4245)",
		state: "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND objid = 4245 AND mode = 'ShareLock' AND pid = pg_backend_pid()", pinned: "1", why: "pg_try_advisory_lock_shared"},
	{name: "set_config", sql: "SELECT set_config('work_mem', '5555kB', false)", state: "SHOW work_mem", pinned: "5555kB", why: "set_config"},
	{name: "SQL PREPARE", sql: "PREPARE pin_stmt AS SELECT 1",
		state: "SELECT count(*)::text FROM pg_prepared_statements WHERE name = 'pin_stmt'", pinned: "1", why: "PREPARE"},
	{name: "CREATE TEMP TABLE", sql: "CREATE TEMP TABLE pin_tmp (x int)",
		state: "SELECT (to_regclass('pg_temp.pin_tmp') IS NOT NULL)::text", pinned: "true", why: "temporary"},
	{name: "CREATE TEMPORARY TABLE", sql: "CREATE TEMPORARY TABLE pin_tmp2 (x int)",
		state: "SELECT (to_regclass('pg_temp.pin_tmp2') IS NOT NULL)::text", pinned: "true", why: "temporary"},
	{name: "DECLARE WITH HOLD", sql: "DECLARE pin_cur CURSOR WITH HOLD FOR SELECT 1",
		state: "SELECT count(*)::text FROM pg_cursors WHERE name = 'pin_cur'", pinned: "1", why: "WITH HOLD"},
	// A non-superuser may not load auto_explain; LOAD pins whatever the outcome.
	{name: "LOAD", sql: "LOAD 'auto_explain'", allowErr: true, why: "LOAD"},
	// With max_prepared_statements = 0, statements are not tracked.
	{name: "named Parse untracked", pool: "max_prepared_statements = 0", run: func(t *testing.T, ctx context.Context, c *pgconn.PgConn) {
		if _, err := c.Prepare(ctx, "pin_named", "SELECT 1", nil); err != nil {
			t.Fatalf("Prepare: %v", err)
		}
	}, state: "SELECT count(*)::text FROM pg_prepared_statements WHERE name = 'pin_named'", pinned: "1", why: "SQL PREPARE"},
}

var pinRoleOnce sync.Once

// pinRole creates sy_pinrole, a role sy_scram may SET ROLE to.
func pinRole(t *testing.T) {
	t.Helper()
	var err error
	pinRoleOnce.Do(func() {
		err = pg.Nodes[0].Exec(context.Background(),
			"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sy_pinrole') THEN CREATE ROLE sy_pinrole; END IF; END$$",
			"GRANT sy_pinrole TO "+testbed.UserSCRAM)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Each statement that leaves session state behind pins its client: with
// a pool of 2, A keeps its backend across transactions while others use
// the other server only, A sees its state, and after A leaves, the
// server is reset (DISCARD ALL) and reused without A's state.
func TestPooledPins(t *testing.T) {
	needPG(t)
	pinRole(t)
	for _, tc := range pinCases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			px := poolSetup{pool: "default_pool_size = 2\nquery_wait_timeout = \"700ms\"\n" + tc.pool}.start(t)
			dsn := px.dsn("tx", testbed.UserSCRAM)

			a := connect(t, ctx, dsn)
			b := connect(t, ctx, dsn)
			c := connect(t, ctx, dsn)
			if tc.run != nil {
				tc.run(t, ctx, a)
			} else if err := execSimple(ctx, a, tc.sql); err != nil && !tc.allowErr {
				t.Fatalf("%s: %v", tc.sql, err)
			}
			pidA := backendPID(t, ctx, a)

			// B holds the other server; C finds none free: A's is its own.
			mustQuery(t, ctx, b, "BEGIN")
			if pidB := backendPID(t, ctx, b); pidB == pidA {
				t.Fatalf("B's transaction runs on pinned A's backend %s", pidA)
			}
			start := time.Now()
			if _, err := query(ctx, c, "SELECT 1"); sqlState(err) != "53300" {
				t.Fatalf("C with A pinned and B in a transaction (pool of 2): got %v, want 53300", err)
			}
			if d := time.Since(start); d < 500*time.Millisecond {
				t.Fatalf("C failed after %s, before query_wait_timeout", d)
			}
			for i := 0; i < 3; i++ {
				if got := backendPID(t, ctx, a); got != pidA {
					t.Fatalf("pinned A moved from backend %s to %s", pidA, got)
				}
				if tc.state != "" {
					if got := mustQuery(t, ctx, a, tc.state)[0]; got != tc.pinned {
						t.Fatalf("A: %s = %q, want %q", tc.state, got, tc.pinned)
					}
				}
			}
			mustQuery(t, ctx, b, "COMMIT")

			// B churns while A runs transactions: B never gets A's server.
			stop := make(chan struct{})
			bErr := make(chan error, 1)
			go func() {
				for {
					select {
					case <-stop:
						bErr <- nil
						return
					default:
					}
					row, err := query(ctx, b, "SELECT pg_backend_pid()::text")
					if err != nil {
						bErr <- err
						return
					}
					if row[0] == pidA {
						bErr <- fmt.Errorf("B ran on pinned A's backend %s", pidA)
						return
					}
				}
			}()
			for i := 0; i < 10; i++ {
				if got := backendPID(t, ctx, a); got != pidA {
					close(stop)
					<-bErr
					t.Fatalf("pinned A moved from backend %s to %s", pidA, got)
				}
			}
			close(stop)
			if err := <-bErr; err != nil {
				t.Fatal(err)
			}
			if lines := px.Log.Matching("client pinned", tc.why); len(lines) == 0 {
				t.Errorf("no \"client pinned\" log line naming %q:\n%s", tc.why, strings.Join(px.Log.Matching("pinned"), "\n"))
			}

			// A leaves; its server is reset and serves others without A's state.
			a.Close(ctx)
			b.Close(ctx)
			c.Close(ctx)
			hs := holdServers(t, ctx, dsn, 2)
			found := false
			for _, h := range hs {
				found = found || h.pid == pidA
				if tc.state == "" {
					continue
				}
				if got := mustQuery(t, ctx, h.c, tc.state)[0]; got == tc.pinned {
					t.Errorf("a new client on backend %s (A's was %s) sees A's state: %s = %q", h.pid, pidA, tc.state, got)
				}
			}
			if !found {
				t.Errorf("A's backend %s was not reused after A left (reset failed?); pool has %s, %s", pidA, hs[0].pid, hs[1].pid)
			}
			if strings.Contains(tc.sql, "advisory") {
				sc := superConn(t, ctx)
				if n := mustQuery(t, ctx, sc, "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND objid IN (4242, 4243, 4244, 4245)")[0]; n != "0" {
					t.Errorf("%s advisory locks still held after A left", n)
				}
			}
			commitAll(t, ctx, hs)
		})
	}
}

// Statements that leave nothing behind past their transaction do not
// pin: after them, with a pool of 2, two other clients can each hold a
// server.
func TestPooledDoesNotPin(t *testing.T) {
	needPG(t)
	for _, sql := range []string{
		"BEGIN; SET LOCAL work_mem = '1234kB'; COMMIT",
		"BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SELECT 1; COMMIT",
		"SET application_name = 'not_pinned'",
		"SET TIME ZONE 'UTC'",
		"SELECT 'SET work_mem = 1', 'pg_advisory_lock(1)', $$set_config('a', 'b', false)$$",
		"SELECT pg_advisory_xact_lock(77)",
		"-- SET work_mem = 1\nSELECT 1",
	} {
		t.Run(sql, func(t *testing.T) {
			ctx := testCtx(t)
			px := poolSetup{pool: "default_pool_size = 2\nquery_wait_timeout = \"2s\""}.start(t)
			dsn := px.dsn("tx", testbed.UserSCRAM)
			a := connect(t, ctx, dsn)
			mustExec(t, ctx, a, sql)
			hs := holdServers(t, ctx, dsn, 2)
			commitAll(t, ctx, hs)
			mustQuery(t, ctx, a, "SELECT 1")
			if lines := px.Log.Matching("client pinned"); len(lines) != 0 {
				t.Errorf("pinned: %s", strings.Join(lines, "\n"))
			}
		})
	}
}

// A tracked setting follows its client to another server, and no other
// client sees it.
func TestPooledTrackedSettingsFollow(t *testing.T) {
	needPG(t)
	for _, tc := range []struct {
		name, value, set string
		unreported       bool // PostgreSQL does not report it: Switchyard follows the SET itself
		extended         bool // the SET is sent with the extended protocol (pgjdbc does)
	}{
		{"application_name", "a1", "SET application_name = 'a1'", false, false},
		{"TimeZone", "Asia/Tokyo", "SET TimeZone = 'Asia/Tokyo'", false, false},
		{"TimeZone", "Europe/Paris", "SET TIME ZONE 'Europe/Paris'", false, false},
		{"DateStyle", "SQL, DMY", "SET DateStyle = 'SQL, DMY'", false, false},
		{"IntervalStyle", "iso_8601", "SET IntervalStyle = 'iso_8601'", false, false},
		{"client_encoding", "LATIN1", "SET client_encoding = 'LATIN1'", false, false},
		{"client_encoding", "LATIN2", "SET NAMES 'LATIN2'", false, false},
		{"standard_conforming_strings", "off", "SET standard_conforming_strings = off", false, false},
		{"default_transaction_read_only", "on", "SET default_transaction_read_only = on", false, false},
		{"statement_timeout", "12345ms", "SET statement_timeout = '12345ms'", true, false},
		{"work_mem", "7778kB", "SET SESSION work_mem TO '7778kB'", true, false},
		{"work_mem", "7779kB", "SELECT 1; /* c */ SET work_mem = '7779kB'", true, false},
		{"extra_float_digits", "3", "SET extra_float_digits = 3", true, true},
		{"lock_timeout", "4s", "SET lock_timeout = '4s'", true, true},
	} {
		t.Run(tc.set, func(t *testing.T) {
			ctx := testCtx(t)
			px := poolSetup{pool: "default_pool_size = 2\nquery_wait_timeout = \"5s\""}.start(t)
			dsn := px.dsn("tx", testbed.UserSCRAM)
			a := connect(t, ctx, dsn)
			early := connect(t, ctx, dsn) // logged in before A's SET
			var pid1 string
			if tc.extended {
				if _, err := a.ExecParams(ctx, tc.set, nil, nil, nil, nil).Close(); err != nil {
					t.Fatal(err)
				}
				pid1 = backendPID(t, ctx, a) // where the SET ran, unless A moved since
			} else {
				res, err := a.Exec(ctx, tc.set+"; SELECT pg_backend_pid()::text").ReadAll()
				if err != nil {
					t.Fatal(err)
				}
				pid1 = string(res[len(res)-1].Rows[0][0])
			}
			if lines := px.Log.Matching("client pinned"); len(lines) != 0 {
				t.Errorf("pinned: %s", strings.Join(lines, "\n"))
			}
			if got := a.ParameterStatus(tc.name); !tc.unreported && got != tc.value {
				t.Errorf("A's ParameterStatus %s = %q, want %q", tc.name, got, tc.value)
			}
			show := "SELECT current_setting('" + tc.name + "'), pg_backend_pid()::text"

			// A client that logged in before A's SET, on either server.
			for _, on := range []bool{true, false} {
				keep := steer(t, ctx, dsn, pid1, on)
				if row := mustQuery(t, ctx, early, show); row[0] == tc.value {
					t.Errorf("a client that logged in before A's SET, on backend %s (A's SET ran on %s), sees %s = %q", row[1], pid1, tc.name, row[0])
				}
				keep.commit(t, ctx)
			}

			// Others, on either server, never see A's value.
			hs := holdServers(t, ctx, dsn, 2)
			for _, h := range hs {
				if got := mustQuery(t, ctx, h.c, show)[0]; got == tc.value {
					t.Errorf("another client on backend %s (A's SET ran on %s) sees A's %s = %q", h.pid, pid1, tc.name, got)
				}
			}
			commitAll(t, ctx, hs)

			// A's next transactions, forced onto the other server and back.
			for _, on := range []bool{false, true} {
				keep := steer(t, ctx, dsn, pid1, on)
				row := mustQuery(t, ctx, a, show)
				if (row[1] == pid1) != on {
					t.Fatalf("steering failed: A ran on %s (SET on %s, want same = %v)", row[1], pid1, on)
				}
				if row[0] != tc.value {
					t.Errorf("A on backend %s (SET on %s): %s = %q, want %q", row[1], pid1, tc.name, row[0], tc.value)
				}
				keep.commit(t, ctx)
			}

			// A brand-new client on each server does not see A's value.
			hs = holdServers(t, ctx, dsn, 2)
			for _, h := range hs {
				if got := mustQuery(t, ctx, h.c, show)[0]; got == tc.value {
					t.Errorf("a new client on backend %s sees A's %s = %q", h.pid, tc.name, got)
				}
			}
			commitAll(t, ctx, hs)
		})
	}
}

// RESET of a setting, RESET ALL (asyncpg's pool sends it with
// pg_advisory_unlock_all, CLOSE ALL and UNLISTEN at every release) and
// DISCARD ALL, each in a request of its own, follow the client without
// pinning it: its settings go back to what it asked for at login, on
// whichever server runs its next transaction.
func TestPooledResetFollows(t *testing.T) {
	needPG(t)
	ctx := testCtx(t)
	px := poolSetup{pool: "default_pool_size = 2\nquery_wait_timeout = \"5s\""}.start(t)
	dsn := px.dsn("tx", testbed.UserSCRAM)
	a := connect(t, ctx, dsn+" options='-c statement_timeout=4321' application_name=startup_app")
	const show = "SELECT current_setting('statement_timeout') || ' ' || current_setting('application_name') || ' ' || current_setting('work_mem'), pg_backend_pid()::text"
	const atLogin = "4321ms startup_app 4MB"
	everywhere := func(want string) {
		t.Helper()
		onBothServers(t, ctx, dsn, a, show, want)
	}
	everywhere(atLogin)
	for _, tc := range []struct{ set, reset, changed string }{
		{"SET statement_timeout = '9s'; SET application_name = 'changed'; SET work_mem = '3MB'",
			"SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;", "9s changed 3MB"},
		{"SET statement_timeout = '8s'", "RESET statement_timeout", "8s startup_app 4MB"},
		{"SET work_mem = '5MB'", "RESET work_mem", "4321ms startup_app 5MB"},
		{"SET work_mem = '6MB'; SET application_name = 'again'", "DISCARD ALL", "4321ms again 6MB"},
	} {
		mustExec(t, ctx, a, tc.set)
		everywhere(tc.changed)
		mustExec(t, ctx, a, tc.reset)
		if got := a.ParameterStatus("application_name"); got != "startup_app" {
			t.Errorf("after %s, A's ParameterStatus application_name = %q, want startup_app", tc.reset, got)
		}
		everywhere(atLogin)
	}
	if lines := px.Log.Matching("client pinned"); len(lines) != 0 {
		t.Errorf("pinned: %s", strings.Join(lines, "\n"))
	}
	// Nobody else ever sees A's settings.
	hs := holdServers(t, ctx, dsn, 2)
	for _, h := range hs {
		if got := mustQuery(t, ctx, h.c, show)[0]; got != "0 "+"" {
			if strings.Contains(got, "4321") || strings.Contains(got, "startup_app") {
				t.Errorf("another client on backend %s sees %q", h.pid, got)
			}
		}
	}
	commitAll(t, ctx, hs)
}

// onBothServers runs show (a value, then the backend's PID) on A's
// transactions, with a pool of 2, until A has run on both servers, and
// checks the value is want on each. A server goes back to the pool just
// after its client has the ReadyForQuery, so which one A gets next is a
// race: it steers A away from its last server, then onto it.
func onBothServers(t *testing.T, ctx context.Context, dsn string, a *pgconn.PgConn, show, want string) {
	t.Helper()
	seen := map[string]bool{}
	for i := 0; len(seen) < 2 && i < 8; i++ {
		keep := steer(t, ctx, dsn, backendPID(t, ctx, a), i%2 == 1)
		row := mustQuery(t, ctx, a, show)
		seen[row[1]] = true
		if row[0] != want {
			t.Errorf("A on backend %s: %q, want %q", row[1], row[0], want)
		}
		keep.commit(t, ctx)
	}
	if len(seen) != 2 {
		t.Errorf("A ran on %v only; want both servers", seen)
	}
}

// RESET of a reported setting (TimeZone), or SET ... TO DEFAULT, in a
// request of its own, follows the client to every server as PostgreSQL
// would do it on one: back to the value it logged in with (its startup
// parameter, or else the server's default), with ParameterStatus saying
// so, and without pinning it.
func TestPooledResetReportedFollows(t *testing.T) {
	needPG(t)
	px := poolSetup{pool: "default_pool_size = 2\nquery_wait_timeout = \"5s\""}.start(t)
	dsn := px.dsn("tx", testbed.UserSCRAM)
	const show = "SELECT current_setting('TimeZone'), pg_backend_pid()::text"
	for _, tc := range []struct{ name, params string }{
		{"server default", ""},
		{"startup parameter", " timezone=America/New_York"},
	} {
		for _, reset := range []string{"RESET TimeZone", "SET TimeZone TO DEFAULT", "SET TIME ZONE DEFAULT"} {
			t.Run(tc.name+"/"+reset, func(t *testing.T) {
				ctx := testCtx(t)
				// What PostgreSQL does, on a direct connection.
				direct := connect(t, ctx, pg.Nodes[0].DSN(testbed.UserSCRAM)+tc.params)
				atLogin := mustQuery(t, ctx, direct, "SHOW TimeZone")[0]
				mustExec(t, ctx, direct, "SET TimeZone = 'Asia/Tokyo'")
				mustExec(t, ctx, direct, reset)
				if got := mustQuery(t, ctx, direct, "SHOW TimeZone")[0]; got != atLogin || direct.ParameterStatus("TimeZone") != atLogin {
					t.Fatalf("PostgreSQL itself: after %s, TimeZone %q (ParameterStatus %q); logged in with %q",
						reset, got, direct.ParameterStatus("TimeZone"), atLogin)
				}

				a := connect(t, ctx, dsn+tc.params)
				if got := a.ParameterStatus("TimeZone"); got != atLogin {
					t.Errorf("A's ParameterStatus TimeZone at login %q, want %q", got, atLogin)
				}
				onBothServers(t, ctx, dsn, a, show, atLogin)
				mustExec(t, ctx, a, "SET TimeZone = 'Asia/Tokyo'")
				onBothServers(t, ctx, dsn, a, show, "Asia/Tokyo")
				mustExec(t, ctx, a, reset)
				if got := a.ParameterStatus("TimeZone"); got != atLogin {
					t.Errorf("after %s, A's ParameterStatus TimeZone = %q, want %q", reset, got, atLogin)
				}
				onBothServers(t, ctx, dsn, a, show, atLogin)
				a.Close(ctx)
				// Nobody else sees A's settings.
				hs := holdServers(t, ctx, dsn, 2)
				for _, h := range hs {
					if got := mustQuery(t, ctx, h.c, show)[0]; got == "Asia/Tokyo" || (tc.params != "" && got == atLogin) {
						t.Errorf("another client on backend %s sees A's TimeZone %q", h.pid, got)
					}
				}
				commitAll(t, ctx, hs)
			})
		}
	}
	if lines := px.Log.Matching("client pinned"); len(lines) != 0 {
		t.Errorf("pinned: %s", strings.Join(lines, "\n"))
	}
}

// Session mode: the client keeps its server, and a reset there goes back
// to the client's startup settings (which Switchyard applied with
// set_config), not to the server's own, as on a direct connection.
func TestPooledSessionResetFollows(t *testing.T) {
	needPG(t)
	px := poolSetup{pool: "default_pool_size = 2\nquery_wait_timeout = \"5s\""}.start(t)
	const params = " timezone=America/New_York options='-c statement_timeout=4321'"
	const show = "SELECT current_setting('TimeZone') || ' ' || current_setting('statement_timeout')"
	const atLogin = "America/New_York 4321ms"
	for _, tc := range []struct{ set, reset string }{
		{"SET TimeZone = 'Asia/Tokyo'", "RESET TimeZone"},
		{"SET TIME ZONE 'Asia/Tokyo'", "SET TIME ZONE LOCAL"},
		{"SET statement_timeout = '9s'", "RESET statement_timeout"},
		{"SET TimeZone = 'Asia/Tokyo'; SET statement_timeout = '9s'", "RESET ALL"},
		{"SET TimeZone = 'Asia/Tokyo'; SET statement_timeout = '9s'", "DISCARD ALL"},
	} {
		t.Run(tc.reset, func(t *testing.T) {
			ctx := testCtx(t)
			for _, c := range []struct {
				who string
				dsn string
			}{
				{"PostgreSQL itself", pg.Nodes[0].DSN(testbed.UserSCRAM)},
				{"a session-mode client", px.dsn("sess", testbed.UserSCRAM)},
			} {
				a := connect(t, ctx, c.dsn+params)
				if got := mustQuery(t, ctx, a, show)[0]; got != atLogin {
					t.Fatalf("%s at login: %q, want %q", c.who, got, atLogin)
				}
				mustExec(t, ctx, a, tc.set)
				if got := mustQuery(t, ctx, a, show)[0]; got == atLogin {
					t.Fatalf("%s after %s: %q", c.who, tc.set, got)
				}
				mustExec(t, ctx, a, tc.reset)
				if got := mustQuery(t, ctx, a, show)[0]; got != atLogin {
					t.Errorf("%s after %s: %q, want %q", c.who, tc.reset, got, atLogin)
				}
				if got := a.ParameterStatus("TimeZone"); got != "America/New_York" {
					t.Errorf("%s after %s: ParameterStatus TimeZone %q, want America/New_York", c.who, tc.reset, got)
				}
				a.Close(ctx)
			}
		})
	}
}

// Startup parameters (options=-c ..., extra_float_digits, search_path,
// application_name) hold on whichever server runs the client's
// transaction, and are reset for the next client who did not ask.
func TestPooledStartupParams(t *testing.T) {
	needPG(t)
	ctx := testCtx(t)
	px := poolSetup{pool: "default_pool_size = 2\nquery_wait_timeout = \"5s\""}.start(t)
	dsn := px.dsn("tx", testbed.UserSCRAM)
	want := map[string]string{
		"statement_timeout":  "4321ms",
		"lock_timeout":       "1234ms",
		"extra_float_digits": "3", // the default is 1
		"search_path":        "sp_one, public",
		"application_name":   "startup_app",
	}
	a := connect(t, ctx, dsn+" options='-c statement_timeout=4321 --lock_timeout=1234' extra_float_digits=3 search_path='sp_one, public' application_name=startup_app")
	const show = "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), current_setting('extra_float_digits'), " +
		"current_setting('search_path'), current_setting('application_name'), pg_backend_pid()::text"
	names := []string{"statement_timeout", "lock_timeout", "extra_float_digits", "search_path", "application_name"}
	check := func(who string, row []string, mine bool) {
		t.Helper()
		for i, n := range names {
			if mine && row[i] != want[n] {
				t.Errorf("%s on backend %s: %s = %q, want %q", who, row[5], n, row[i], want[n])
			}
			if !mine && row[i] == want[n] {
				t.Errorf("%s on backend %s: %s = %q, A's startup setting leaked", who, row[5], n, row[i])
			}
		}
	}
	pid1 := mustQuery(t, ctx, a, show)[5]
	seen := map[string]bool{}
	for _, on := range []bool{false, true, false} {
		keep := steer(t, ctx, dsn, pid1, on)
		row := mustQuery(t, ctx, a, show)
		seen[row[5]] = true
		check("A", row, true)
		keep.commit(t, ctx)
	}
	if len(seen) != 2 {
		t.Fatalf("A ran on %v; want both servers", seen)
	}
	// Clients without those parameters, on both servers.
	for i := 0; i < 2; i++ {
		hs := holdServers(t, ctx, dsn, 2)
		for _, h := range hs {
			check("a client without startup parameters", mustQuery(t, ctx, h.c, show), false)
		}
		commitAll(t, ctx, hs)
		mustQuery(t, ctx, a, show) // A back on one of them
	}
	// The options statement_timeout is enforced on whichever server.
	if _, err := query(ctx, a, "SELECT pg_sleep(6)"); sqlState(err) != "57014" {
		t.Errorf("pg_sleep(6) with statement_timeout=4321: %v, want 57014", err)
	}
}

// Session mode: the client is given its server's real PID, keeps that
// server for life, and server_reset_query runs when it leaves.
func TestPooledSessionMode(t *testing.T) {
	needPG(t)
	ctx := testCtx(t)
	px := poolSetup{pool: "default_pool_size = 1\nquery_wait_timeout = \"5s\""}.start(t)
	dsn := px.dsn("sess", testbed.UserSCRAM)
	a := connect(t, ctx, dsn)
	pid := backendPID(t, ctx, a)
	if fmt.Sprint(a.PID()) != pid {
		t.Fatalf("BackendKeyData PID %d, backend %s", a.PID(), pid)
	}
	mustExec(t, ctx, a, "SET work_mem = '7777kB'; CREATE TEMP TABLE sess_tmp (x int); PREPARE sess_stmt AS SELECT 1; SELECT pg_advisory_lock(99)")
	for i := 0; i < 3; i++ {
		if got := backendPID(t, ctx, a); got != pid {
			t.Fatalf("session client moved from %s to %s", pid, got)
		}
	}
	// Cancel with the real key, until the query is cancelled (a cancel
	// that arrives before the query cancels nothing).
	stop := make(chan struct{})
	cancelled := make(chan struct{})
	go func() {
		defer close(cancelled)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				a.CancelRequest(ctx)
			}
		}
	}()
	start := time.Now()
	_, err := query(ctx, a, "SELECT pg_sleep(10)")
	close(stop)
	<-cancelled
	if sqlState(err) != "57014" {
		t.Fatalf("cancelled pg_sleep: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %s", d)
	}
	a.Close(ctx)

	b := connect(t, ctx, dsn)
	if got := backendPID(t, ctx, b); got != pid {
		t.Errorf("pool of 1: B got backend %s, A had %s (server not reused after reset)", got, pid)
	}
	if got := mustQuery(t, ctx, b, "SHOW work_mem")[0]; got == "7777kB" {
		t.Errorf("B sees A's work_mem")
	}
	if got := mustQuery(t, ctx, b, "SELECT (to_regclass('pg_temp.sess_tmp') IS NULL)::text || (SELECT count(*) FROM pg_prepared_statements)::text")[0]; got != "true0" {
		t.Errorf("B sees A's temp table or prepared statement: %s", got)
	}
	sc := superConn(t, ctx)
	if n := mustQuery(t, ctx, sc, "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND objid = 99")[0]; n != "0" {
		t.Errorf("A's advisory lock survived A")
	}
}
