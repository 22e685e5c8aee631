package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/switchyard-proxy/switchyard/internal/wire/wiretest"

	"github.com/jackc/pgx/v5/pgproto3"
)

// startupBytes is a StartupMessage of the given version with params in
// order, as a client lays it out.
func startupBytes(version uint32, params ...string) []byte {
	body := binary.BigEndian.AppendUint32(nil, version)
	for _, p := range params {
		body = append(append(body, p...), 0)
	}
	body = append(body, 0)
	return append(binary.BigEndian.AppendUint32(nil, uint32(4+len(body))), body...)
}

func TestParseStartupMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  []byte
		code string // "" when accepted
	}{
		{"3.0", startupBytes(3<<16, "user", "u", "database", "d"), ""},
		{"3.1 passes to the server", startupBytes(3<<16|1, "user", "u"), ""},
		{"3.2 passes to the server", startupBytes(3<<16|2, "user", "u", "_pq_.foo", "x"), ""},
		{"2.0", startupBytes(2<<16, "user", "u"), "0A000"},
		{"4.0", startupBytes(4<<16, "user", "u"), "0A000"},
		{"no user", startupBytes(3<<16, "database", "d"), "28000"},
		{"no terminator", startupBytes(3<<16, "user", "u")[:14], "08P01"},
		{"missing value", append(startupBytes(3<<16, "user", "u")[:15:15], "database\x00"...), "08P01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := tc.raw
			binary.BigEndian.PutUint32(raw, uint32(len(raw)))
			m, err := parseStartupMessage(startupPacket{code: binary.BigEndian.Uint32(raw[4:8]), raw: raw})
			var ce *clientError
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.code == "":
				if m.params["user"] != "u" || m.params["database"] == "" || !bytes.Equal(m.raw, raw) {
					t.Fatalf("decoded %+v", m)
				}
			case !errors.As(err, &ce) || ce.Code != tc.code:
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
}

func TestReplicationParameter(t *testing.T) {
	for v, want := range map[string]bool{"": false, "false": false, "off": false, "0": false, "true": true, "on": true, "1": true, "database": true} {
		m := &startupMessage{params: map[string]string{"replication": v}}
		if m.replication() != want {
			t.Errorf("replication=%q: %v", v, !want)
		}
	}
}

// FuzzStartup feeds arbitrary bytes to the startup parsers: they must
// return an error or a packet, never panic, and never accept a length
// outside PostgreSQL's bounds.
func FuzzStartup(f *testing.F) {
	f.Add(wiretest.Encode(f, &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": "u"}}))
	f.Add(wiretest.Encode(f, &pgproto3.SSLRequest{}))
	f.Add(wiretest.Encode(f, &pgproto3.CancelRequest{ProcessID: 1, SecretKey: []byte{1, 2, 3, 4}}))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{'X', 0, 0, 0, 4})
	f.Add(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 12), 2<<16))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for i := 0; i < 4; i++ {
			p, err := readStartup(r)
			if err != nil {
				return
			}
			if len(p.raw) < 8 || len(p.raw) > maxStartupLen+4 {
				t.Fatalf("accepted a %d-byte packet", len(p.raw))
			}
			switch p.code {
			case codeCancelRequest:
				parseCancel(p)
			case codeSSLRequest, codeGSSENCRequest:
			default:
				if m, err := parseStartupMessage(p); err == nil && m.params["user"] == "" {
					t.Fatal("accepted a startup message without a user")
				}
			}
		}
	})
}
