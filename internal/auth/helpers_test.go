package auth

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/switchyard-proxy/switchyard/internal/wire"
)

// AuthServer is a tiny PostgreSQL front door for tests: it reads the
// startup message, runs an Exchange for the user, and sends
// AuthenticationOk and ReadyForQuery, or the error a proxy would send.
type AuthServer struct {
	ln     net.Listener
	method Method
	lookup func(user string) (Secret, bool)

	results chan AuthResult
	wg      sync.WaitGroup
}

type AuthResult struct {
	User      string
	First     byte // first Authentication code sent, or 255 for none
	Err       error
	ClientKey []byte
}

func NewAuthServer(t *testing.T, m Method, lookup func(string) (Secret, bool)) *AuthServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &AuthServer{ln: ln, method: m, lookup: lookup, results: make(chan AuthResult, 100)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				s.results <- s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *AuthServer) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Next is the result of the next connection to end.
func (s *AuthServer) Next(t *testing.T) AuthResult {
	t.Helper()
	select {
	case r := <-s.results:
		return r
	case <-time.After(3 * time.Second):
		t.Fatal("no connection served")
		return AuthResult{}
	}
}

func (s *AuthServer) serve(c net.Conn) (res AuthResult) {
	res.First = 255
	br := bufio.NewReader(c)
	var sm *pgproto3.StartupMessage
	for sm == nil {
		var hdr [4]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			res.Err = err
			return res
		}
		b := make([]byte, binary.BigEndian.Uint32(hdr[:])-4)
		if _, err := io.ReadFull(br, b); err != nil {
			res.Err = err
			return res
		}
		if binary.BigEndian.Uint32(b) == 80877103 || binary.BigEndian.Uint32(b) == 80877104 { // SSL, GSS
			c.Write([]byte{'N'})
			continue
		}
		sm = &pgproto3.StartupMessage{}
		if err := sm.Decode(b); err != nil {
			res.Err = err
			return res
		}
	}
	res.User = sm.Parameters["user"]
	sec, found := s.lookup(res.User)
	e, msg, err := Begin(s.method, res.User, sec, found)
	if len(msg) > 8 {
		res.First = msg[8]
	}
	for err == nil && msg != nil {
		c.Write(msg)
		var in []byte
		if in, err = wire.ReadMessage(br, 1<<16); err != nil {
			break
		}
		var done bool
		msg, done, err = e.Step(in)
		if done {
			c.Write(msg)
			break
		}
	}
	res.Err = err
	if err != nil {
		code, text := "08P01", err.Error()
		if errors.Is(err, ErrAuthFailed) {
			code, text = "28P01", fmt.Sprintf("password authentication failed for user %q", res.User)
		}
		c.Write(encode(&pgproto3.ErrorResponse{Severity: "FATAL", Code: code, Message: text}))
		return res
	}
	res.ClientKey = e.ClientKey()
	var out []byte
	out = append(out, encode(&pgproto3.AuthenticationOk{})...)
	out = append(out, encode(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 2}})...)
	out = append(out, encode(&pgproto3.ReadyForQuery{TxStatus: 'I'})...)
	c.Write(out)
	io.Copy(io.Discard, br) // until the client's Terminate and close
	return res
}

// Connect logs in to s with pgconn as user with password.
func (s *AuthServer) Connect(t *testing.T, user, password string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=%s password='%s' sslmode=disable", s.Port(), user, password))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// PgCode is the SQLSTATE of a server error, or "".
func PgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// converse runs an Exchange against a Login without I/O, and returns
// the Exchange's error (or the Login's) and the exchange.
func converse(t *testing.T, m Method, user string, sec Secret, found bool, client Secret) (*Exchange, error) {
	t.Helper()
	e, msg, err := Begin(m, user, sec, found)
	if err != nil {
		return e, err
	}
	l := NewLogin(user, client)
	for msg != nil {
		reply, err := l.Respond(msg)
		if err != nil {
			return e, fmt.Errorf("login: %w", err)
		}
		if reply == nil {
			break
		}
		var done bool
		msg, done, err = e.Step(reply)
		if err != nil {
			return e, err
		}
		if done {
			if msg != nil {
				if _, err := l.Respond(msg); err != nil {
					return e, fmt.Errorf("login: %w", err)
				}
			}
			break
		}
	}
	if _, err := l.Respond(encode(&pgproto3.AuthenticationOk{})); err != nil || !l.Done() {
		return e, fmt.Errorf("login after AuthenticationOk: %v", err)
	}
	return e, nil
}
