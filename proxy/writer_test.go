package proxy

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/internal/wire/wiretest"

	"github.com/jackc/pgx/v5/pgproto3"
)

// A short write (the client stopped reading and the write deadline of a
// session being ended ran out) leaves the client half a message: no
// ErrorResponse may follow it, in the relay or in login.
func TestNoErrorAfterAShortWrite(t *testing.T) {
	stream := wiretest.Encode(t,
		&pgproto3.DataRow{Values: [][]byte{bytes.Repeat([]byte("v"), 100)}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")},
	)
	kill := &KillCause{SQLState: "57P01", Message: "terminating"}
	for _, tc := range []struct {
		name  string
		write func(w *clientWriter) error
	}{
		{"relay", func(w *clientWriter) error { _, err := w.Write(stream); return err }},
		{"login", func(w *clientWriter) error { w.queue(stream); return w.flush() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, proxySide := net.Pipe()
			defer client.Close()
			defer proxySide.Close()
			w := &clientWriter{conn: proxySide}
			got := make(chan []byte)
			go func() {
				b := make([]byte, 7) // the client reads 7 bytes, then nothing
				n, _ := io.ReadFull(client, b)
				got <- b[:n]
				client.SetReadDeadline(time.Now().Add(3 * time.Second))
				rest, _ := io.ReadAll(client)
				got <- rest
			}()
			proxySide.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
			if err := tc.write(w); err == nil {
				t.Fatal("the write did not fail")
			}
			if first := <-got; len(first) != 7 {
				t.Fatalf("client read %d bytes", len(first))
			}
			if w.atBoundary() {
				t.Fatal("the writer claims a boundary after half a message")
			}
			w.sendError(kill)
			proxySide.Close()
			if rest := <-got; len(rest) != 0 {
				t.Fatalf("after half a message the client got %q more", rest)
			}
		})
	}
}

// After whole messages the error is appended, once.
func TestErrorAfterWholeMessages(t *testing.T) {
	client, proxySide := net.Pipe()
	defer client.Close()
	w := &clientWriter{conn: proxySide}
	go func() {
		w.queue(wiretest.Encode(t, &pgproto3.ReadyForQuery{TxStatus: 'I'}))
		w.flush()
		w.sendError(&KillCause{SQLState: "57P01", Message: "bye"})
		proxySide.Close()
	}()
	fe := pgproto3.NewFrontend(client, client)
	if m, err := fe.Receive(); err != nil {
		t.Fatal(err)
	} else if _, ok := m.(*pgproto3.ReadyForQuery); !ok {
		t.Fatalf("got %T", m)
	}
	m, err := fe.Receive()
	if e, ok := m.(*pgproto3.ErrorResponse); err != nil || !ok || e.Code != "57P01" || e.Severity != "FATAL" {
		t.Fatalf("got %#v %v", m, err)
	}
}
