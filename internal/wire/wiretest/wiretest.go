// Package wiretest builds protocol byte streams for unit tests.
package wiretest

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Encode returns msgs on the wire, one after another.
func Encode(t testing.TB, msgs ...pgproto3.Message) []byte {
	t.Helper()
	var b []byte
	for _, m := range msgs {
		var err error
		if b, err = m.Encode(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}
