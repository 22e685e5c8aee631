package pool_test

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
	"github.com/switchyard-proxy/switchyard/pool"
)

const appName = "sy-pool-test"

// passwordAuth answers cleartext and MD5 password requests.
type passwordAuth struct{ user, password string }

func (a passwordAuth) Respond(msg []byte) ([]byte, error) {
	switch method := binary.BigEndian.Uint32(msg[5:9]); method {
	case 0: // AuthenticationOk
		return nil, nil
	case 3:
		return (&pgproto3.PasswordMessage{Password: a.password}).Encode(nil)
	case 5:
		inner := md5hex(a.password + a.user)
		return (&pgproto3.PasswordMessage{Password: "md5" + md5hex(inner+string(msg[9:13]))}).Encode(nil)
	default:
		return nil, fmt.Errorf("method %d not supported", method)
	}
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// opener dials and logs in as the pool's user, with auth.
func opener(auth pool.Authenticator) pool.Opener {
	return func(ctx context.Context, id pool.ID, addr string) (*pool.Conn, error) {
		d := pool.Dialer{TLSMode: pool.TLSDisable}
		nc, err := d.Dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		c := pool.NewConn(nc, id.Member, addr)
		params := map[string]string{"user": id.User, "database": id.Database, "application_name": appName}
		if err := pool.Login(ctx, c, params, auth); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
}

func login(t *testing.T, user, db string, auth pool.Authenticator) (*pool.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := opener(auth)(ctx, pool.ID{Member: "pg1", Database: db, User: user}, pg.Nodes[0].Addr())
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// admin is a superuser connection for looking at the server.
func admin(t *testing.T) *pool.Conn {
	t.Helper()
	c, err := login(t, testbed.UserSuper, testbed.DefaultDB, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func queryRow(t *testing.T, c *pool.Conn, sql string, args ...string) []*string {
	t.Helper()
	row, found, err := c.QueryRow(t.Context(), sql, args...)
	if err != nil || !found {
		t.Fatalf("%s: found %v, %v", sql, found, err)
	}
	return row
}

func TestLogin(t *testing.T) {
	needPG(t)
	c, err := login(t, testbed.UserTrust, testbed.DefaultDB, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.Params["server_version"], "15") || c.Params["application_name"] != appName ||
		c.Params["client_encoding"] == "" {
		t.Fatalf("params %v", c.Params)
	}
	if c.Key.PID == 0 || len(c.Key.Secret) != 4 {
		t.Fatalf("key %+v", c.Key)
	}
	if pid := queryRow(t, c, "SELECT pg_backend_pid()::text")[0]; *pid != fmt.Sprint(c.Key.PID) {
		t.Fatalf("backend pid %s, key %d", *pid, c.Key.PID)
	}

	if _, err := login(t, testbed.UserMD5, testbed.DefaultDB, passwordAuth{testbed.UserMD5, testbed.Password}); err != nil {
		t.Fatalf("md5 login: %v", err)
	}
	_, err = login(t, testbed.UserMD5, testbed.DefaultDB, passwordAuth{testbed.UserMD5, "wrong"})
	var se *pool.ServerError
	if !errors.As(err, &se) || se.Code != "28P01" || se.Severity != "FATAL" {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := login(t, testbed.UserMD5, testbed.DefaultDB, nil); err == nil {
		t.Fatal("login asked for a password with no authenticator")
	}
}

func TestLoginUnknownDatabase(t *testing.T) {
	needPG(t)
	_, err := login(t, testbed.UserTrust, "sy_nope", nil)
	var se *pool.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("err %v, want a ServerError", err)
	}
	if se.Code != "3D000" || err.Error() != `server error 3D000: database "sy_nope" does not exist` {
		t.Fatalf("err %q (%s)", err, se.Code)
	}
	if se.Raw[0] != 'E' || int(binary.BigEndian.Uint32(se.Raw[1:5]))+1 != len(se.Raw) ||
		!strings.Contains(string(se.Raw), `database "sy_nope" does not exist`) {
		t.Fatalf("raw message %q", se.Raw)
	}
}

func TestExecQueryRow(t *testing.T) {
	needPG(t)
	c := admin(t)
	if err := c.Exec(t.Context(), "SET application_name = 'sy-exec'"); err != nil {
		t.Fatal(err)
	}
	if c.Params["application_name"] != "sy-exec" {
		t.Fatalf("ParameterStatus not recorded: %v", c.Params)
	}
	var se *pool.ServerError
	if err := c.Exec(t.Context(), "SELECT 1/0"); !errors.As(err, &se) || se.Code != "22012" {
		t.Fatalf("1/0: %v", err)
	}
	row := queryRow(t, c, "SELECT rolname, rolcanlogin::text, NULL::text FROM pg_authid WHERE rolname = $1", testbed.UserTrust)
	if len(row) != 3 || *row[0] != testbed.UserTrust || *row[1] != "true" || row[2] != nil {
		t.Fatalf("row %v", row)
	}
	if _, found, err := c.QueryRow(t.Context(), "SELECT rolname FROM pg_authid WHERE rolname = $1", "sy_nobody"); found || err != nil {
		t.Fatalf("no row: found %v, %v", found, err)
	}
	if rec := queryRow(t, c, "SELECT pg_is_in_recovery()")[0]; *rec != "f" {
		t.Fatalf("pg_is_in_recovery %s", *rec)
	}
	if _, _, err := c.QueryRow(t.Context(), "SELECT $1::int", "x"); !errors.As(err, &se) || se.Code != "22P02" {
		t.Fatalf("bad parameter: %v", err)
	}
	if err := c.Exec(t.Context(), "BEGIN"); err == nil {
		t.Fatal("Exec left in a transaction block without an error")
	}
}

func pgSet(t *testing.T, opts pool.Options) *pool.Set {
	s := pool.NewSet(opts, opener(nil))
	t.Cleanup(s.Close)
	return s
}

func pgGet(t *testing.T, s *pool.Set, id pool.ID) *pool.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	sv, err := s.Get(ctx, id, pg.Nodes[0].Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Put(sv, pool.Idle) })
	return sv
}

var trustID = pool.ID{Member: "pg1", Database: testbed.DefaultDB, User: testbed.UserTrust}

func TestDeadServerNeverHandedOut(t *testing.T) {
	needPG(t)
	adm := admin(t)
	for _, opts := range []pool.Options{
		{Size: 1},                        // socket check on every Get
		{Size: 1, CheckDelay: time.Hour}, // the socket check still runs
		{Size: 1, CheckDelay: time.Millisecond, CheckQuery: "SELECT 1"}, // and the check query
	} {
		s := pgSet(t, opts)
		sv := pgGet(t, s, trustID)
		pid := fmt.Sprint(sv.Key.PID)
		s.Put(sv, pool.Idle)
		queryRow(t, adm, "SELECT pg_terminate_backend($1::int)", pid)
		testbed.Eventually(t, 10*time.Second, "the backend to exit", func() bool {
			return *queryRow(t, adm, "SELECT count(*)::text FROM pg_stat_activity WHERE pid = $1::int", pid)[0] == "0"
		})
		time.Sleep(5 * time.Millisecond) // past CheckDelay
		sv = pgGet(t, s, trustID)
		if fmt.Sprint(sv.Key.PID) == pid {
			t.Fatalf("%+v: the terminated server was handed out", opts)
		}
		if err := sv.Exec(t.Context(), "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		if st := stat(s, trustID); st.Opened != 2 || st.Closed != 1 {
			t.Fatalf("%+v: stats %+v", opts, st)
		}
	}
}

func TestReset(t *testing.T) {
	needPG(t)
	s := pgSet(t, pool.Options{Size: 1, ResetQuery: "DISCARD ALL"})
	const state = "SELECT current_setting('statement_timeout'), to_regclass('pg_temp.sy_t')::text"
	sv := pgGet(t, s, trustID)
	for _, q := range []string{"SET statement_timeout = '12s'", "CREATE TEMP TABLE sy_t (x int)"} {
		if err := sv.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	s.Put(sv, pool.Idle) // no reset: the next user sees it all
	sv2 := pgGet(t, s, trustID)
	if row := queryRow(t, sv2.Conn, state); sv2 != sv || *row[0] != "12s" || row[1] == nil {
		t.Fatalf("without reset: same server %v, state %v %v", sv2 == sv, *row[0], row[1])
	}
	s.Put(sv2, pool.Reset)
	sv3 := pgGet(t, s, trustID)
	if row := queryRow(t, sv3.Conn, state); sv3 != sv || *row[0] != "0" || row[1] != nil {
		t.Fatalf("after DISCARD ALL: same server %v, state %v %v", sv3 == sv, *row[0], row[1])
	}
}

func TestLimitsUnderLoad(t *testing.T) {
	needPG(t)
	adm := admin(t)
	var se *pool.ServerError
	if err := adm.Exec(t.Context(), "CREATE DATABASE sy_pool"); err != nil && !(errors.As(err, &se) && se.Code == "42P04") {
		t.Fatal(err)
	}
	const size, maxDB, maxUser = 3, 4, 5
	s := pgSet(t, pool.Options{Size: size, MaxDBConns: maxDB, MaxUserConns: maxUser, ResetQuery: "DISCARD ALL"})
	var ids []pool.ID
	for _, db := range []string{testbed.DefaultDB, "sy_pool"} {
		for _, user := range []string{testbed.UserTrust, testbed.UserSuper} {
			ids = append(ids, pool.ID{Member: "pg1", Database: db, User: user})
		}
	}

	stop := make(chan struct{})
	var maxSeen [3]int // per database, per user, per pool
	monitor := make(chan error, 1)
	go func() {
		const q = `SELECT (SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid() GROUP BY datname) d)::text,
			(SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid() GROUP BY usename) u)::text,
			(SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid() GROUP BY datname, usename) p)::text`
		for {
			select {
			case <-stop:
				monitor <- nil
				return
			default:
			}
			row, _, err := adm.QueryRow(context.Background(), q, appName)
			if err != nil {
				monitor <- err
				return
			}
			for i, v := range row {
				var n int
				fmt.Sscan(*v, &n)
				maxSeen[i] = max(maxSeen[i], n)
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, 50*20)
	for g := range 50 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 20 {
				id := ids[r.IntN(len(ids))]
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				sv, err := s.Get(ctx, id, pg.Nodes[0].Addr())
				if err != nil {
					cancel()
					errs <- err
					return
				}
				err = sv.Exec(ctx, "SELECT pg_sleep(0.002)")
				cancel()
				how := []pool.Release{pool.Idle, pool.Idle, pool.Idle, pool.Reset, pool.Close}[r.IntN(5)]
				if err != nil {
					errs <- err
					how = pool.Close
				}
				s.Put(sv, how)
			}
		})
	}
	wg.Wait()
	close(stop)
	if err := <-monitor; err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if maxSeen[0] > maxDB || maxSeen[1] > maxUser || maxSeen[2] > size {
		t.Fatalf("backends seen at most: %d per database (max_db_connections %d), %d per user (max_user_connections %d), %d per pool (default_pool_size %d)",
			maxSeen[0], maxDB, maxSeen[1], maxUser, maxSeen[2], size)
	}
	if maxSeen[0] < 2 {
		t.Fatalf("the load never opened more than %d backends per database", maxSeen[0])
	}
	var opened, closed uint64
	for _, st := range s.Stats() {
		opened += st.Opened
		closed += st.Closed
		if st.Active != 0 || st.Waiting != 0 || st.Login != 0 {
			t.Fatalf("after the load: %+v", st)
		}
	}
	t.Logf("max backends per database %d, per user %d, per pool %d; %d servers opened, %d closed",
		maxSeen[0], maxSeen[1], maxSeen[2], opened, closed)
}
