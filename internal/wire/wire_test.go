package wire

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/switchyard-proxy/switchyard/internal/wire/wiretest"

	"github.com/jackc/pgx/v5/pgproto3"
)

func TestFramerBoundariesAnySplit(t *testing.T) {
	stream := wiretest.Encode(t,
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("x"), DataTypeOID: 23}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte(strings.Repeat("v", 1000))}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")},
		&pgproto3.ReadyForQuery{TxStatus: 'T'},
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
	)
	ends := map[int]bool{}
	{
		var f Framer
		for i := range stream {
			f.Scan(stream[i:i+1], nil)
			if f.AtBoundary() {
				ends[i+1] = true
			}
		}
		if len(ends) != 5 || !ends[len(stream)] {
			t.Fatalf("boundaries at %v", ends)
		}
	}
	// Any split point gives the same boundaries and types.
	for cut := 0; cut <= len(stream); cut++ {
		var types, statuses []byte
		f := Framer{Ready: func(s byte) { statuses = append(statuses, s) }}
		on := func(t byte) { types = append(types, t) }
		f.Scan(stream[:cut], on)
		if f.AtBoundary() != (cut == 0 || ends[cut]) {
			t.Fatalf("cut %d: AtBoundary = %v", cut, f.AtBoundary())
		}
		f.Scan(stream[cut:], on)
		if !f.AtBoundary() || string(types) != "TDCZZ" || f.Last() != 'Z' || string(statuses) != "TI" {
			t.Fatalf("cut %d: boundary %v types %q statuses %q", cut, f.AtBoundary(), types, statuses)
		}
	}
}

func TestFramerRejectsBadLength(t *testing.T) {
	var f Framer
	if err := f.Scan([]byte{'Q', 0, 0, 0, 3}, nil); err == nil {
		t.Fatal("length 3 accepted")
	}
	f = Framer{}
	if err := f.Scan([]byte{'Q', 0x7f, 0xff, 0xff, 0xff}, nil); err == nil {
		t.Fatal("2 GB message accepted")
	}
}

func TestReadMessage(t *testing.T) {
	t.Run("copy", func(t *testing.T) { testRead(t, ReadMessage) })
	t.Run("in place", func(t *testing.T) { testRead(t, NextMessage) })
	// A message larger than the buffer is still read whole.
	big := wiretest.Encode(t, &pgproto3.Query{String: string(bytes.Repeat([]byte{'x'}, 100))})
	m, err := NextMessage(bufio.NewReaderSize(bytes.NewReader(big), 16), 1000)
	if err != nil || !bytes.Equal(m, big) {
		t.Fatalf("big: %q %v", m, err)
	}
}

func testRead(t *testing.T, ReadMessage func(*bufio.Reader, int) ([]byte, error)) {
	stream := wiretest.Encode(t, &pgproto3.Query{String: "SELECT 1"}, &pgproto3.Terminate{})
	r := bufio.NewReader(bytes.NewReader(stream))
	m, err := ReadMessage(r, 100)
	if err != nil || m[0] != 'Q' {
		t.Fatalf("%q %v", m, err)
	}
	if m, err = ReadMessage(r, 100); err != nil || m[0] != 'X' || len(m) != 5 {
		t.Fatalf("%q %v", m, err)
	}
	if _, err = ReadMessage(r, 100); err != io.EOF {
		t.Fatalf("at the end: %v, want EOF", err)
	}
	if _, err = ReadMessage(bufio.NewReader(bytes.NewReader(stream[:7])), 100); err != io.ErrUnexpectedEOF {
		t.Fatalf("cut short: %v, want ErrUnexpectedEOF", err)
	}
	if _, err = ReadMessage(bufio.NewReader(bytes.NewReader(stream)), 8); err == nil {
		t.Fatal("a message over max was accepted")
	}
}
