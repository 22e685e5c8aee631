package admin_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// consoleYard is Switchyard on a static primary and replica with a relay
// listener "rw" and a transaction-pooled "tx", console users "postgres"
// (admin) and sy_scram (stats only), and the admin endpoint behind basic
// auth and TLS.
func consoleYard(t *testing.T) (*testbed.Yard, *testbed.PGCluster, string) {
	t.Helper()
	pg := testbed.PG(t, testbed.PGOptions{Replicas: 1})
	dir := t.TempDir()
	cert, key, err := testbed.WriteCert(dir, "admin")
	if err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "http-password")
	userlist := filepath.Join(dir, "userlist.txt")
	if err := os.WriteFile(pwFile, []byte("page-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(userlist, []byte(fmt.Sprintf("%q %q\n%q %q\n", testbed.UserSuper, testbed.Password,
		testbed.UserSCRAM, testbed.Password)), 0o600); err != nil {
		t.Fatal(err)
	}
	n := pg.Nodes
	y := testbed.StartYard(t, "console", fmt.Sprintf(`
[admin]
listen = "127.0.0.1:0"
users = ["postgres"]
stats_users = [%q]
http_user = "ops"
http_password_file = %q
cert = %q
key = %q
[cluster]
name = "demo"
[cluster.static]
members = [{ name = "pg1", address = %q, role = "primary" }, { name = "pg2", address = %q, role = "replica" }]
[auth]
type = "scram-sha-256"
file = %q
[pool]
default_pool_size = 3
[[listener]]
name = "rw"
address = "127.0.0.1:0"
role = "primary"
[[listener]]
name = "tx"
address = "127.0.0.1:0"
role = "primary"
pool_mode = "transaction"
`, testbed.UserSCRAM, pwFile, cert, key, n[0].Addr(), n[1].Addr(), userlist))
	return y, pg, "https://" + y.AdminAddr().String()
}

// consoleDSN connects to the console through listener as user.
func consoleDSN(y *testbed.Yard, listener, user string) string {
	return y.DSN(listener, user) + " dbname=pgbouncer"
}

// Each console command with the columns and types pgbouncer 1.24 sends
// (text 25, int4 23, int8 20, numeric 1700), and Switchyard's own SHOWs.
var consoleCommands = []struct {
	query string
	cols  string // name:oid ...
	tag   string
}{
	{"SHOW POOLS", "database:25 user:25 cl_active:23 cl_waiting:23 cl_active_cancel_req:23 cl_waiting_cancel_req:23 sv_active:23 sv_active_cancel:23 sv_being_canceled:23 sv_idle:23 sv_used:23 sv_tested:23 sv_login:23 maxwait:23 maxwait_us:23 pool_mode:25 load_balance_hosts:25", "SHOW"},
	{"show stats;", "database:25 total_server_assignment_count:1700 total_xact_count:1700 total_query_count:1700 total_received:1700 total_sent:1700 total_xact_time:1700 total_query_time:1700 total_wait_time:1700 total_client_parse_count:1700 total_server_parse_count:1700 total_bind_count:1700 avg_server_assignment_count:1700 avg_xact_count:1700 avg_query_count:1700 avg_recv:1700 avg_sent:1700 avg_xact_time:1700 avg_query_time:1700 avg_wait_time:1700 avg_client_parse_count:1700 avg_server_parse_count:1700 avg_bind_count:1700", "SHOW"},
	{"SHOW STATS_TOTALS", "database:25 server_assignment_count:1700 xact_count:1700 query_count:1700 bytes_received:1700 bytes_sent:1700 xact_time:1700 query_time:1700 wait_time:1700 client_parse_count:1700 server_parse_count:1700 bind_count:1700", "SHOW"},
	{"SHOW STATS_AVERAGES", "database:25 server_assignment_count:1700 xact_count:1700 query_count:1700 bytes_received:1700 bytes_sent:1700 xact_time:1700 query_time:1700 wait_time:1700 avg_client_parse_count:1700 avg_server_parse_count:1700 avg_bind_count:1700", "SHOW"},
	{"SHOW CLIENTS", "type:25 user:25 database:25 replication:25 state:25 addr:25 port:23 local_addr:25 local_port:23 connect_time:25 request_time:25 wait:23 wait_us:23 close_needed:23 ptr:25 link:25 remote_pid:23 tls:25 application_name:25 prepared_statements:23 id:23", "SHOW"},
	{"SHOW SERVERS", "type:25 user:25 database:25 replication:25 state:25 addr:25 port:23 local_addr:25 local_port:23 connect_time:25 request_time:25 wait:23 wait_us:23 close_needed:23 ptr:25 link:25 remote_pid:23 tls:25 application_name:25 prepared_statements:23 id:23", "SHOW"},
	{"SHOW DATABASES", "name:25 host:25 port:23 database:25 force_user:25 pool_size:23 min_pool_size:23 reserve_pool_size:23 server_lifetime:23 pool_mode:25 load_balance_hosts:25 max_connections:23 current_connections:23 max_client_connections:23 current_client_connections:23 paused:23 disabled:23", "SHOW"},
	{"SHOW LISTS", "list:25 items:23", "SHOW"},
	{"SHOW CONFIG", "key:25 value:25 default:25 changeable:25", "SHOW"},
	{"SHOW VERSION", "version:25", "SHOW"},
	{"SHOW TOPOLOGY", "member:25 role:25 healthy:25 state:25 address:25 timeline:20 lag_bytes:20 tags:25 in_role_since:25 revision:20 source:25 discovery:25 age_seconds:1700", "SHOW"},
	{"SHOW LISTENERS", "name:25 address:25 role:25 pool_mode:25 paused:23 clients_active:20 clients_waiting:20 sessions:20 bytes_in:20 bytes_out:20 errors:20 refused:20 killed:20", "SHOW"},
	{"PAUSE tx", "", "PAUSE"},
	{"RESUME tx", "", "RESUME"},
	{"pause", "", "PAUSE"},
	{"RESUME;", "", "RESUME"},
	{`RECONNECT "tx/postgres"`, "", "RECONNECT"},
	{"RECONNECT", "", "RECONNECT"},
	{"RELOAD", "", "RELOAD"},
	{"KILL tx", "", "KILL"},
	{"RESUME tx", "", "RESUME"},
}

func TestConsoleCommands(t *testing.T) {
	y, _, _ := consoleYard(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Traffic first, so that the rows have something to show.
	tx, err := pgconn.Connect(ctx, y.DSN("tx", testbed.UserSCRAM))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := tx.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
			t.Fatal(err)
		}
	}
	rw, err := pgconn.Connect(ctx, y.DSN("rw", testbed.UserSCRAM))
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close(ctx)

	// The wire: names, order, types and tags, through the relay listener,
	// with the startup parameter older lib/pq versions always send.
	con, err := pgconn.Connect(ctx, consoleDSN(y, "rw", testbed.UserSuper)+" extra_float_digits=2")
	if err != nil {
		t.Fatal(err)
	}
	defer con.Close(ctx)
	rows := map[string][][]string{}
	for _, c := range consoleCommands {
		res, err := con.Exec(ctx, c.query).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", c.query, err)
		}
		if len(res) != 1 {
			t.Fatalf("%s: %d results", c.query, len(res))
		}
		var cols []string
		for _, f := range res[0].FieldDescriptions {
			cols = append(cols, fmt.Sprintf("%s:%d", f.Name, f.DataTypeOID))
		}
		if got := strings.Join(cols, " "); got != c.cols || res[0].CommandTag.String() != c.tag {
			t.Errorf("%s:\n got %s [%s]\nwant %s [%s]", c.query, got, res[0].CommandTag, c.cols, c.tag)
		}
		for _, r := range res[0].Rows {
			var vals []string
			for _, v := range r {
				vals = append(vals, string(v))
			}
			rows[c.query] = append(rows[c.query], vals)
		}
	}
	tx.Close(ctx) // KILL tx ended it; closing is harmless

	has := func(q string, want ...string) {
		t.Helper()
		for _, r := range rows[q] {
			if len(r) >= len(want) && slices.Equal(r[:len(want)], want) {
				return
			}
		}
		t.Errorf("%s has no row starting %q:\n%v", q, want, rows[q])
	}
	has("SHOW POOLS", "pgbouncer", "pgbouncer", "1")
	has("SHOW POOLS", "tx/postgres", testbed.UserSCRAM)
	has("SHOW STATS_TOTALS", "tx/postgres")
	has("SHOW STATS_TOTALS", "rw")
	has("SHOW DATABASES", "tx/postgres")
	has("SHOW DATABASES", "rw")
	has("SHOW CLIENTS", "C", testbed.UserSCRAM, "rw", "none", "active")
	has("SHOW CLIENTS", "C", testbed.UserSuper, "pgbouncer", "none", "active")
	has("SHOW SERVERS", "S", testbed.UserSCRAM, "tx/postgres", "none", "idle")
	has("SHOW SERVERS", "S", testbed.UserSCRAM, "rw", "none", "active")
	has("SHOW LISTS", "databases")
	has("SHOW LISTS", "used_clients", "3")
	has("SHOW CONFIG", "default_pool_size", "3", "20", "yes")
	has("SHOW CONFIG", "max_client_conn")
	has("SHOW VERSION", "Switchyard test")
	has("SHOW TOPOLOGY", "pg1", "primary", "yes")
	has("SHOW TOPOLOGY", "pg2", "replica", "yes")
	has("SHOW LISTENERS", "rw", y.Address("rw"), "primary", "none")
	has("SHOW LISTENERS", "tx", y.Address("tx"), "primary", "transaction")
	for _, r := range rows["SHOW STATS_TOTALS"] {
		if r[0] == "tx/postgres" && (r[2] != "5" || r[3] != "5") {
			t.Errorf("tx/postgres: xact_count %s, query_count %s; want 5 each", r[2], r[3])
		}
	}

	// psql runs every command (the client most runbooks use).
	psql := filepath.Join(testbed.PGBin, "psql")
	for _, c := range consoleCommands {
		cmd := exec.CommandContext(ctx, psql, "-X", "-A", "-v", "ON_ERROR_STOP=1", "-c", c.query, consoleDSN(y, "tx", testbed.UserSuper))
		cmd.Env = append(os.Environ(), "PGPASSWORD="+testbed.Password)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("psql -c %q: %v\n%s", c.query, err, out)
			continue
		}
		if c.cols != "" {
			var names []string
			for _, nc := range strings.Fields(c.cols) {
				names = append(names, nc[:strings.LastIndex(nc, ":")])
			}
			if first, _, _ := strings.Cut(string(out), "\n"); first != strings.Join(names, "|") {
				t.Errorf("psql -c %q: header %q", c.query, first)
			}
		}
	}

	// The console's own name: database "switchyard" reaches it as
	// "pgbouncer" does, and SHOW CLIENTS shows the client under it.
	cmd := exec.CommandContext(ctx, psql, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", "SHOW VERSION", "-c", "SHOW CLIENTS",
		y.DSN("rw", testbed.UserSuper)+" dbname=switchyard")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+testbed.Password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql to database switchyard: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if lines[0] != "Switchyard test" {
		t.Errorf("SHOW VERSION on database switchyard: %q, want %q", lines[0], "Switchyard test")
	}
	if !slices.ContainsFunc(lines[1:], func(l string) bool {
		return strings.HasPrefix(l, "C|"+testbed.UserSuper+"|switchyard|none|active|")
	}) {
		t.Errorf("SHOW CLIENTS on database switchyard has no active client of database switchyard:\n%s", out)
	}
}

// Errors are pgbouncer's: an ERROR with 08P01, and the session goes on;
// a stats user may only SHOW; a user in neither list is refused before
// any password exchange; the extended protocol is refused.
func TestConsoleRefusals(t *testing.T) {
	y, _, _ := consoleYard(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	stats, err := pgconn.Connect(ctx, consoleDSN(y, "tx", testbed.UserSCRAM))
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close(ctx)
	for q, want := range map[string]string{
		"PAUSE":              "admin access needed",
		"SHOW NOTHING":       "invalid command 'SHOW NOTHING', use SHOW HELP;",
		"SELECT 1; SELECT 2": "invalid command 'SELECT 1; SELECT 2', use SHOW HELP;",
		"RELOAD":             "admin access needed",
	} {
		_, err := stats.Exec(ctx, q).ReadAll()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "08P01" || pe.Message != want || pe.Severity != "ERROR" {
			t.Errorf("%s: got %v, want ERROR 08P01 %q", q, err, want)
		}
	}
	if res, err := stats.Exec(ctx, "SHOW VERSION").ReadAll(); err != nil || len(res[0].Rows) != 1 {
		t.Fatalf("a stats user after errors: SHOW VERSION: %v", err)
	}

	admin, err := pgconn.Connect(ctx, consoleDSN(y, "tx", testbed.UserSuper))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for q, want := range map[string]string{
		"PAUSE nosuch":     "no such database: nosuch",
		"RESUME":           "pooler is not paused/suspended",
		"KILL":             "a database is required",
		"KILL pgbouncer":   "cannot kill admin db: pgbouncer",
		"PAUSE rw":         `listener "rw" relays: it has no pool to act on`,
		"RESUME tx/nosuch": "database tx/nosuch is not paused",
	} {
		_, err := admin.Exec(ctx, q).ReadAll()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "08P01" || pe.Message != want {
			t.Errorf("%s: got %v, want 08P01 %q", q, err, want)
		}
	}
	// The extended protocol: an ERROR, then the connection ends.
	_, err = admin.ExecParams(ctx, "SHOW VERSION", nil, nil, nil, nil).Close()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Message != "extended query protocol not supported by admin console" {
		t.Errorf("extended protocol: %v", err)
	}

	// Not a console user: refused with pgbouncer's words.
	_, err = pgconn.Connect(ctx, consoleDSN(y, "tx", testbed.UserMD5))
	if !errors.As(err, &pe) || pe.Code != "08P01" || pe.Message != "not allowed" || pe.Severity != "FATAL" {
		t.Errorf("a user in neither list: %v", err)
	}
	// A wrong password for a console user is a wrong password.
	_, err = pgconn.Connect(ctx, strings.Replace(consoleDSN(y, "tx", testbed.UserSuper), "password="+testbed.Password, "password=wrong", 1))
	if !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Errorf("a wrong password: %v", err)
	}
}

// The admin endpoint: TLS, basic auth everywhere but /health; and the
// health checks' 503s once no member serves a role.
func TestAdminHTTPProtected(t *testing.T) {
	_, pg, base := consoleYard(t)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
	get := func(path, user, pass string) (int, string) {
		t.Helper()
		method := "GET"
		if path == "/primary" {
			method = "OPTIONS" // as HAProxy's check in Patroni's template
		}
		req, _ := http.NewRequest(method, base+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/health", "", ""); code != 200 {
		t.Errorf("/health without credentials: %d", code)
	}
	for _, p := range []string{"/", "/api/status", "/metrics", "/ready", "/primary", "/replica"} {
		if code, _ := get(p, "", ""); code != 401 {
			t.Errorf("%s without credentials: %d, want 401", p, code)
		}
		if code, _ := get(p, "ops", "wrong"); code != 401 {
			t.Errorf("%s with a wrong password: %d, want 401", p, code)
		}
		if code, body := get(p, "ops", "page-secret"); code != 200 {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
	if code, body := get("/?refresh=0", "ops", "page-secret"); code != 200 || strings.Contains(body, `http-equiv="refresh"`) {
		t.Errorf("/?refresh=0: %d, refreshing: %v", code, strings.Contains(body, `http-equiv="refresh"`))
	}
	if code, body := get("/", "ops", "page-secret"); code != 200 || !strings.Contains(body, `<meta http-equiv="refresh" content="2">`) {
		t.Errorf("/: %d, does not refresh every 2 s", code)
	}
	if code, _ := get("/?refresh=soon", "ops", "page-secret"); code != 400 {
		t.Errorf("/?refresh=soon: %d, want 400", code)
	}
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := plain.Get(strings.Replace(base, "https://", "http://", 1) + "/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP answered on a TLS admin endpoint")
		}
	}

	// As Patroni's: 503 when no member serves the role. The replica
	// stops, and its health checks take it out; then the primary.
	answers := func(path string, code int, state string) func() bool {
		return func() bool {
			got, body := get(path, "ops", "page-secret")
			var b map[string]any
			return got == code && json.Unmarshal([]byte(body), &b) == nil && b["state"] == state
		}
	}
	// Patroni's other paths and parameters, wired to the same checks
	// (TestHealthChecks has their semantics).
	for _, c := range []struct {
		path string
		code int
	}{{"/read-only", 200}, {"/leader", 200}, {"/async", 200}, {"/replica?lag=1GB", 200}, {"/sync", 503},
		{"/replica?lag=lots", 400}} {
		if code, body := get(c.path, "ops", "page-secret"); code != c.code {
			t.Errorf("%s: %d %s, want %d", c.path, code, body, c.code)
		}
	}
	pg.Nodes[1].Stop()
	testbed.Eventually(t, 20*time.Second, "/replica to answer 503 with the replica stopped",
		answers("/replica", http.StatusServiceUnavailable, "no replica available"))
	if !answers("/primary", http.StatusOK, "running")() {
		t.Errorf("/primary with the primary up and the replica stopped is not 200 running")
	}
	pg.Nodes[0].Stop()
	testbed.Eventually(t, 20*time.Second, "/primary to answer 503 with the primary stopped",
		answers("/primary", http.StatusServiceUnavailable, "no primary available"))
	if code, body := get("/ready", "ops", "page-secret"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no primary is known") {
		t.Errorf("/ready with no primary: %d %s, want 503 saying no primary is known", code, body)
	}
	if code, _ := get("/health", "", ""); code != http.StatusOK {
		t.Errorf("/health with no member up: %d, want 200 (the process is up)", code)
	}
}

// SHUTDOWN stops Switchyard as SIGTERM does. pgbouncer's closes the
// console connection that asked (without an answer) and exits the
// process; Switchyard's answers, ends that connection with 57P01 without
// reading another command, ends what is left at shutdown_timeout and
// exits with status 0. It runs the real binary, a Switchyard of its own
// that no other test uses.
func TestConsoleShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	pg := testbed.PG(t, testbed.PGOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := testbed.BuildSwitchyard(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, "shutdown.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
[admin]
listen = "127.0.0.1:0"
users = [%q]
[cluster]
name = "demo"
[cluster.static]
members = [{ name = "pg1", address = %q, role = "primary" }]
[auth]
type = "trust"
[[listener]]
name = "rw"
address = %q
role = "primary"
[limits]
shutdown_timeout = "2s"
`, testbed.UserSuper, pg.Nodes[0].Addr(), addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &testbed.LogBuffer{}
	cmd := exec.Command(bin, "-config", cfg)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("switchyard log:\n%s", logs.String())
		}
	})
	testbed.Eventually(t, 10*time.Second, "Switchyard to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	host, port, _ := net.SplitHostPort(addr)
	dsn := func(db string) string {
		return fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable connect_timeout=5", host, port, testbed.UserSuper, db)
	}

	// A client session that outlives the command: it holds the drain
	// until shutdown_timeout ends it.
	client, err := pgconn.Connect(ctx, dsn(testbed.DefaultDB))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	if _, err := client.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}

	con, err := pgconn.Connect(ctx, dsn("pgbouncer"))
	if err != nil {
		t.Fatal(err)
	}
	defer con.Close(context.Background())
	asked := time.Now()
	_, err = con.Exec(ctx, "SHUTDOWN").ReadAll()
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code != "57P01" {
		t.Fatalf("SHUTDOWN refused: %v", err)
	}
	t.Logf("SHUTDOWN answered: %v", err)
	// The console connection ends at once, whatever it was told.
	if _, err := con.Exec(ctx, "SHOW VERSION").ReadAll(); err == nil {
		t.Fatal("the console connection that asked for SHUTDOWN still runs commands")
	}
	// The shutdown runs beside the answer: the listeners close within
	// moments of it, not necessarily before it arrives.
	testbed.Eventually(t, 5*time.Second, "Switchyard to stop accepting clients after SHUTDOWN", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})

	select {
	case <-exited:
		if exitErr != nil {
			t.Fatalf("Switchyard exited with %v after SHUTDOWN, want status 0", exitErr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Switchyard did not exit within 20 s of SHUTDOWN (shutdown_timeout is 2 s)")
	}
	t.Logf("Switchyard exited %v after SHUTDOWN", time.Since(asked).Round(time.Millisecond))
	_, err = client.Exec(ctx, "SELECT 1").ReadAll()
	if !errors.As(err, &pe) || pe.Code != "57P01" {
		t.Errorf("the client session after the shutdown: %v, want 57P01 (ended at shutdown_timeout)", err)
	}
	for _, want := range []string{"shutting down", "shutdown timeout reached, ending sessions"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no %q in the log", want)
		}
	}
}
