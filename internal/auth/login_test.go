package auth_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/switchyard-proxy/switchyard/internal/auth"
	"github.com/switchyard-proxy/switchyard/internal/testbed"
	"github.com/switchyard-proxy/switchyard/internal/wire"
)

func needPG(t *testing.T) {
	t.Helper()
	if pg == nil {
		t.Skip("needs PostgreSQL (not under -short)")
	}
}

// pgLogin dials the real server and logs in as user with a Login,
// reading until ReadyForQuery.
func pgLogin(t *testing.T, user string, sec auth.Secret) error {
	t.Helper()
	c, err := net.Dial("tcp", pg.Nodes[0].Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	startup := auth.Encode(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": user, "database": testbed.DefaultDB}})
	if _, err := c.Write(startup); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	l := auth.NewLogin(user, sec)
	for {
		msg, err := wire.ReadMessage(br, 1<<20)
		if err != nil {
			return fmt.Errorf("reading: %w", err)
		}
		switch {
		case msg[0] == 'Z':
			if !l.Done() {
				return errors.New("ReadyForQuery before AuthenticationOk")
			}
			c.Write(auth.Encode(&pgproto3.Terminate{}))
			return nil
		case l.Done():
			continue // ParameterStatus, BackendKeyData
		}
		reply, err := l.Respond(msg)
		if err != nil {
			return err
		}
		if reply != nil {
			c.Write(reply)
		}
	}
}

// authid reads a role's secret from pg_authid as the superuser.
func authid(t *testing.T, role string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, pg.Nodes[0].DSN(testbed.UserSuper))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	res := conn.ExecParams(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", [][]byte{[]byte(role)}, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 {
		t.Fatalf("pg_authid for %s: %v", role, res.Err)
	}
	return string(res.Rows[0][0])
}

func TestLoginRealPostgres(t *testing.T) {
	needPG(t)
	scramSec := auth.ParseSecret(authid(t, testbed.UserSCRAM))
	md5Sec := auth.ParseSecret(authid(t, testbed.UserMD5))
	if scramSec.SCRAM == nil || md5Sec.MD5 == "" {
		t.Fatalf("pg_authid secrets: %v %v", scramSec, md5Sec)
	}
	// Our derivations agree with PostgreSQL's own.
	if auth.MD5Secret(testbed.Password, testbed.UserMD5) != md5Sec.MD5 {
		t.Fatal("md5Secret differs from pg_authid")
	}
	if sc, _ := auth.SCRAMFromPassword(testbed.Password, scramSec.SCRAM.Salt, scramSec.SCRAM.Iterations); !sc.Equal(scramSec.SCRAM) {
		t.Fatal("scramFromPassword differs from pg_authid")
	}

	t.Run("scram with password", func(t *testing.T) {
		if err := pgLogin(t, testbed.UserSCRAM, auth.Secret{Password: testbed.Password}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("md5 with password", func(t *testing.T) {
		if err := pgLogin(t, testbed.UserMD5, auth.Secret{Password: testbed.Password}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("md5 with md5 secret", func(t *testing.T) {
		if err := pgLogin(t, testbed.UserMD5, md5Sec); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("trust", func(t *testing.T) {
		if err := pgLogin(t, testbed.UserTrust, auth.Secret{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		for _, u := range []string{testbed.UserSCRAM, testbed.UserMD5} {
			if err := pgLogin(t, u, auth.Secret{Password: "wrong"}); auth.PgCode(err) != "28P01" {
				t.Fatalf("%s: %v", u, err)
			}
		}
	})
	t.Run("missing secrets", func(t *testing.T) {
		err := pgLogin(t, testbed.UserSCRAM, scramSec)
		if err == nil || !strings.Contains(err.Error(), `no password known for user "sy_scram": the server asks for SCRAM-SHA-256 but only a SCRAM secret is stored and no client has logged in yet`) {
			t.Fatal(err)
		}
		err = pgLogin(t, testbed.UserMD5, scramSec)
		if err == nil || !strings.Contains(err.Error(), "the server asks for md5 but only a SCRAM secret is stored") {
			t.Fatal(err)
		}
		err = pgLogin(t, testbed.UserSCRAM, md5Sec)
		if err == nil || !strings.Contains(err.Error(), "asks for SCRAM-SHA-256 but only an md5 secret is stored") {
			t.Fatal(err)
		}
	})
	t.Run("pass-through", func(t *testing.T) {
		// A real client (pgconn) logs in to our Exchange holding the
		// pg_authid secret; the ClientKey it yields logs in to PostgreSQL.
		store := auth.NewStore(map[string]string{testbed.UserSCRAM: scramSec.SCRAM.Encode()}, nil, 0)
		s := auth.NewAuthServer(t, auth.MethodSCRAM, func(user string) (auth.Secret, bool) {
			sec, ok, _ := store.Lookup(context.Background(), user)
			return sec, ok
		})
		if err := s.Connect(t, testbed.UserSCRAM, testbed.Password); err != nil {
			t.Fatal(err)
		}
		r := s.Next(t)
		if r.Err != nil || r.ClientKey == nil {
			t.Fatalf("exchange: %v, key %v", r.Err, r.ClientKey != nil)
		}
		store.SaveClientKey(testbed.UserSCRAM, scramSec, r.ClientKey)
		sec, _, _ := store.Lookup(context.Background(), testbed.UserSCRAM)
		if sec.Password != "" || sec.ClientKey == nil {
			t.Fatalf("store: %v", sec)
		}
		if err := pgLogin(t, testbed.UserSCRAM, sec); err != nil {
			t.Fatal(err)
		}
		// The same key with a secret of another salt does not match.
		other, _ := auth.NewSCRAMSecret(testbed.Password, 0)
		ck, _, _ := auth.SaltedKeys(testbed.Password, other.Salt, other.Iterations)
		err := pgLogin(t, testbed.UserSCRAM, auth.Secret{SCRAM: other, ClientKey: ck})
		if err == nil || !strings.Contains(err.Error(), "stored SCRAM secret does not match the server's") {
			t.Fatal(err)
		}
	})
}

// psql (libpq) logs in to our Exchange with each method.
func TestExchangeWithPsql(t *testing.T) {
	needPG(t)
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("no psql")
	}
	scramSec, _ := auth.NewSCRAMSecret(testbed.Password, 0)
	secrets := map[string]auth.Secret{"scram": {SCRAM: scramSec}, "plain": {Password: testbed.Password}}
	for _, m := range []auth.Method{auth.MethodSCRAM, auth.MethodMD5, auth.MethodPlain} {
		for _, user := range []string{"scram", "plain", "nobody"} {
			s := auth.NewAuthServer(t, m, func(u string) (auth.Secret, bool) { sec, ok := secrets[u]; return sec, ok })
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			cmd := exec.CommandContext(ctx, psql, "host=127.0.0.1 port="+strconv.Itoa(s.Port())+" user="+user+" sslmode=disable connect_timeout=5", "-Atc", `\q`)
			cmd.Env = append(cmd.Environ(), "PGPASSWORD="+testbed.Password)
			out, err := cmd.CombinedOutput()
			cancel()
			r := s.Next(t)
			if user == "nobody" {
				if err == nil || !strings.Contains(string(out), `password authentication failed for user "nobody"`) {
					t.Fatalf("%s/%s: %v %s", m, user, err, out)
				}
				continue
			}
			if err != nil || r.Err != nil {
				t.Fatalf("%s/%s: %v %s / %v", m, user, err, out, r.Err)
			}
			if (user == "scram") != (r.ClientKey != nil) {
				t.Fatalf("%s/%s: ClientKey %v", m, user, r.ClientKey != nil)
			}
		}
	}
}
