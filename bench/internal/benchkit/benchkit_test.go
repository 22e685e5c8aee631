package benchkit

import (
	"maps"
	"os"
	"testing"
)

// pgbench -S -M prepared -c 100 -j 2 through pgbouncer 1.18 in
// transaction mode (abridged): its two threads' stderr lines interleave.
func TestParsePgbenchAborted(t *testing.T) {
	b, err := os.ReadFile("testdata/pgbench-prepared-pgbouncer.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parsePgbench(string(b), false); err != nil {
		t.Errorf("not tolerant: %v, want the summary read", err)
	}
	r, err := parsePgbench(string(b), true)
	if err != nil {
		t.Fatal(err)
	}
	if r.Txs != 215 || r.TPS != 2506.090382 || r.LatencyMs != 39.903 || r.Failed != 0 {
		t.Errorf("summary: %+v", r)
	}
	if r.Aborted != 21 {
		t.Errorf("Aborted = %d, want 21", r.Aborted)
	}
	if want := map[string]int{`ERROR: prepared statement "P_0" does not exist`: 21}; !maps.Equal(r.Errors, want) {
		t.Errorf("Errors = %v, want %v", r.Errors, want)
	}
	if want := map[string]int{`ERROR: prepared statement "P_0" already exists`: 8}; !maps.Equal(r.Other, want) {
		t.Errorf("Other = %v, want %v", r.Other, want)
	}
}

func TestParsePgbenchClean(t *testing.T) {
	out := `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 10
query mode: extended
number of clients: 100
number of threads: 2
maximum number of tries: 1
duration: 3 s
number of transactions actually processed: 24036
number of failed transactions: 0 (0.000%)
latency average = 12.481 ms
initial connection time = 40.123 ms
tps = 8012.110000 (without initial connection time)
`
	for _, tolerant := range []bool{false, true} {
		r, err := parsePgbench(out, tolerant)
		if err != nil {
			t.Fatal(err)
		}
		if r.Txs != 24036 || r.TPS != 8012.11 || r.Aborted != 0 || r.Errors != nil || r.Other != nil {
			t.Errorf("tolerant %v: %+v", tolerant, r)
		}
	}
	if _, err := parsePgbench("pgbench: error: connection to server failed\n", true); err == nil {
		t.Error("no summary: want an error")
	}
}
