package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// TestDemoSmoke runs what `make demo` runs, with the binary built fresh,
// in -smoke mode: etcd, three Patroni nodes, Switchyard, the writers and
// one switchover through the printed Patroni REST API call. run fails if
// the transaction-pooled writer saw any error or never reached the new
// primary.
func TestDemoSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, Patroni and PostgreSQL")
	}
	bin := testbed.BuildSwitchyard(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var out strings.Builder
	start := time.Now()
	if err := run(ctx, bin, true, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("demo -smoke took %s", time.Since(start).Round(time.Second))
	text := out.String()
	for _, want := range []string{
		`psql "host=127.0.0.1 port=`, "PGPASSWORD=", "Stats page: http://127.0.0.1:",
		"in recovery false", "in recovery true",
		"curl -sS -X POST -d '{\"leader\":", "/switchover; echo", "Successfully switched over to",
	} {
		if !strings.Contains(text, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, text)
		}
	}
	if !regexp.MustCompile(`(?m)^pooled writer: [1-9][0-9]* writes, 0 errors, primary pg\d → pg\d$`).MatchString(text) {
		t.Fatalf("demo output lacks the pooled writer's summary with 0 errors:\n%s", text)
	}
	t.Log(text)
}
