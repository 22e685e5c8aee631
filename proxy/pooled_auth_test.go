package proxy_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// authSecret reads a role's stored secret from pg_authid.
func authSecret(t *testing.T, role string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := connect(t, ctx, pg.Nodes[0].DSN(testbed.UserSuper))
	return mustQuery(t, ctx, c, "SELECT rolpassword FROM pg_authid WHERE rolname = '"+role+"'")[0]
}

// Every way a pooled client authenticates at Switchyard, and every way a
// login fails, against real PostgreSQL behind it.
func TestPooledAuth(t *testing.T) {
	needPG(t)
	scramSecret, md5Secret := authSecret(t, testbed.UserSCRAM), authSecret(t, testbed.UserMD5)
	if !strings.HasPrefix(scramSecret, "SCRAM-SHA-256$") || !strings.HasPrefix(md5Secret, "md5") {
		t.Fatalf("test bed secrets: %q %q", scramSecret, md5Secret)
	}
	// auth_user for auth_query: a superuser may read pg_authid.
	plainList := fmt.Sprintf("%q %q\n%q %q\n%q \"\"\n", testbed.UserSCRAM, testbed.Password, testbed.UserMD5, testbed.Password, testbed.UserSuper)
	hashedList := fmt.Sprintf("%q %q\n%q %q\n", testbed.UserSCRAM, scramSecret, testbed.UserMD5, md5Secret)
	queryList := fmt.Sprintf("%q \"\"\n", testbed.UserSuper)

	type login struct {
		user, password, db string
		want               string // "" = success, else SQLSTATE
	}
	ok := func(user string) login { return login{user: user, password: testbed.Password} }
	cases := []struct {
		name   string
		setup  poolSetup
		logins []login
		md5    []string // users asked for an md5 password (AuthenticationMD5Password)
	}{
		{"scram with cleartext secrets", poolSetup{userlist: plainList}, []login{
			ok(testbed.UserSCRAM), ok(testbed.UserMD5),
			{user: testbed.UserSCRAM, password: "wrong", want: "28P01"},
			{user: "nobody", password: testbed.Password, want: "28P01"},
			{user: testbed.UserSCRAM, password: testbed.Password, db: "nosuchdb", want: "3D000"},
		}, nil},
		// The stored SCRAM secret is PostgreSQL's own: the server login
		// passes the client's proof through (no password is stored). An
		// md5 secret cannot verify SCRAM, at PostgreSQL as here.
		{"scram pass-through and md5 secret", poolSetup{userlist: hashedList}, []login{
			ok(testbed.UserSCRAM), {user: testbed.UserMD5, password: testbed.Password, want: "28P01"},
			{user: testbed.UserSCRAM, password: "wrong", want: "28P01"},
		}, nil},
		// md5: a user with an md5 secret is asked for md5, one with a
		// SCRAM secret for SCRAM, as pgbouncer does.
		{"md5", poolSetup{authType: "md5", userlist: hashedList}, []login{
			ok(testbed.UserMD5), ok(testbed.UserSCRAM),
			{user: testbed.UserMD5, password: "wrong", want: "28P01"},
			{user: "nobody", password: testbed.Password, want: "28P01"},
		}, []string{testbed.UserMD5}},
		// md5 against cleartext secrets: every user in the file is asked
		// for md5, which Switchyard checks with the password; the server
		// login uses the password, with whatever PostgreSQL asks (SCRAM
		// for sy_scram).
		{"md5 with cleartext secrets", poolSetup{authType: "md5", userlist: plainList}, []login{
			ok(testbed.UserSCRAM), ok(testbed.UserMD5),
			{user: testbed.UserSCRAM, password: "wrong", want: "28P01"},
			{user: "nobody", password: testbed.Password, want: "28P01"},
		}, []string{testbed.UserSCRAM, testbed.UserMD5}},
		{"auth_query with md5", poolSetup{authType: "md5", userlist: queryList, auth: fmt.Sprintf("user = %q", testbed.UserSuper)}, []login{
			ok(testbed.UserSCRAM), ok(testbed.UserMD5),
		}, nil},
		{"plain", poolSetup{authType: "plain", userlist: plainList}, []login{
			ok(testbed.UserSCRAM), {user: testbed.UserMD5, password: "wrong", want: "28P01"},
		}, nil},
		// Users missing from the file are looked up with auth_query.
		{"auth_query", poolSetup{userlist: queryList, auth: fmt.Sprintf("user = %q", testbed.UserSuper)}, []login{
			ok(testbed.UserSCRAM), {user: testbed.UserMD5, password: testbed.Password, want: "28P01"},
			{user: testbed.UserSCRAM, password: "wrong", want: "28P01"},
			{user: "nobody", password: testbed.Password, want: "28P01"},
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			px := c.setup.start(t)
			for _, user := range c.md5 {
				if req := authRequest(t, px.addr("tx"), user); req != "*pgproto3.AuthenticationMD5Password" {
					t.Errorf("%s was asked for %s, want an md5 password", user, req)
				}
			}
			for _, l := range c.logins {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				db := l.db
				if db == "" {
					db = testbed.DefaultDB
				}
				host, port := splitAddr(px.addr("tx"))
				start := time.Now()
				conn, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable",
					host, port, l.user, l.password, db))
				took := time.Since(start)
				switch {
				case l.want == "" && err != nil:
					t.Errorf("%s: %v", l.user, err)
				case l.want == "":
					if row := mustQuery(t, ctx, conn, "SELECT current_user"); row[0] != l.user {
						t.Errorf("current_user %v, want %s", row, l.user)
					}
					conn.Close(ctx)
				case sqlState(err) != l.want:
					t.Errorf("%s/%s: got %v, want %s", l.user, db, err, l.want)
				case l.want == "28P01":
					if !strings.Contains(err.Error(), fmt.Sprintf("password authentication failed for user %q", l.user)) {
						t.Errorf("28P01 message: %v", err)
					}
					if took < 400*time.Millisecond {
						t.Errorf("a failed login took %s: it must wait like every other", took)
					}
				case l.want == "3D000":
					if !strings.Contains(err.Error(), `database "nosuchdb" does not exist`) {
						t.Errorf("3D000 message: %v", err)
					}
				}
				cancel()
			}
			for _, line := range px.Log.Lines() {
				for _, secret := range []string{testbed.Password, scramSecret, md5Secret} {
					if strings.Contains(line, secret) {
						t.Errorf("a log line holds a secret: %s", line)
					}
				}
			}
		})
	}
}

// authRequest starts a login as user at addr and returns the type of the
// authentication request Switchyard answers with.
func authRequest(t *testing.T, addr, user string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(rawStartup(user)); err != nil {
		t.Fatal(err)
	}
	msg, err := pgproto3.NewFrontend(c, c).Receive()
	if err != nil {
		t.Fatalf("%s's login: %v", user, err)
	}
	return fmt.Sprintf("%T", msg)
}

// Every failed login gets its 28P01 the same time after its exchange
// began, whatever failed and however long looking the user up took: a
// wrong password for a user in the file (no lookup), one for a user
// auth_query finds, and a user it does not (a slow auth_query each time).
func TestPooledAuthFailureDelay(t *testing.T) {
	needPG(t)
	const lookup = 300 * time.Millisecond
	px := poolSetup{
		userlist: fmt.Sprintf("%q %q\n%q \"\"\n", testbed.UserSCRAM, testbed.Password, testbed.UserSuper),
		auth: fmt.Sprintf("user = %q\nquery = %q", testbed.UserSuper, fmt.Sprintf(
			// pg_sleep on the outer side of the join: it runs whether
			// the user exists or not (no row, or a NULL secret: not found).
			"SELECT u.rolname, u.rolpassword FROM pg_sleep(%g) s LEFT JOIN pg_authid u ON u.rolname = $1 AND u.rolcanlogin", lookup.Seconds())),
	}.start(t)
	fail := func(user string) time.Duration {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		dsn := strings.Replace(px.dsn("tx", user), "password="+testbed.Password, "password=wrong", 1)
		start := time.Now()
		_, err := pgconn.Connect(ctx, dsn)
		took := time.Since(start)
		if sqlState(err) != "28P01" {
			t.Fatalf("%s with a wrong password: %v, want 28P01", user, err)
		}
		return took
	}
	inFile := fail(testbed.UserSCRAM)
	looked := fail(testbed.UserMD5) // found by auth_query
	unknown := fail("nobody_timed") // not found by it
	t.Logf("wrong password: %s (in the file), %s (found by auth_query); unknown user %s",
		inFile.Round(time.Millisecond), looked.Round(time.Millisecond), unknown.Round(time.Millisecond))
	for _, d := range []time.Duration{inFile, looked, unknown} {
		if d < 450*time.Millisecond {
			t.Errorf("a failed login took %s: it must wait like every other", d)
		}
	}
	// Before, the lookup's time came on top of the delay.
	for what, d := range map[string]time.Duration{"a user found by auth_query": looked, "an unknown user": unknown} {
		if diff := d - inFile; diff > lookup/2 || diff < -lookup/2 {
			t.Errorf("%s failed after %s, a user in the file after %s: the time tells them apart", what, d, inFile)
		}
	}
}

func splitAddr(addr string) (host, port string) {
	i := strings.LastIndexByte(addr, ':')
	return addr[:i], addr[i+1:]
}
