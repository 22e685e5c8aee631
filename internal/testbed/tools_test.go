package testbed

import (
	"context"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestToolsPromtool(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	good := "# HELP switchyard_queries_total Queries relayed.\n# TYPE switchyard_queries_total counter\nswitchyard_queries_total{pool=\"a\"} 3\n"
	if out, err := CheckMetrics(ctx, good); err != nil {
		t.Fatalf("valid exposition rejected: %v\n%s", err, out)
	}
	for name, bad := range map[string]struct{ text, want string }{
		"counter without _total": {"# HELP switchyard_queries Queries.\n# TYPE switchyard_queries counter\nswitchyard_queries 3\n", "_total"},
		"malformed line":         {"switchyard_up{ 1\n", "pars"},
	} {
		out, err := CheckMetrics(ctx, bad.text)
		if err == nil {
			t.Errorf("%s: promtool accepted it:\n%s", name, out)
		} else if !strings.Contains(out, bad.want) {
			t.Errorf("%s: promtool output lacks %q: %s", name, bad.want, out)
		}
	}
}

const toolsPage = `<!doctype html>
<html><head><title>tools</title></head>
<body style="margin:0;background:#ffffff">
<div style="width:160px;height:90px;background:#d02020"></div>
<p id="word"></p>
<script>document.getElementById("word").textContent = "pelican-" + (6 * 7);</script>
</body></html>`

func TestToolsChromium(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, toolsPage)
	})
	mux.HandleFunc("/blank", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><body style="background:#ffffff"></body></html>`)
	})
	srv := httptest.NewServer(mux) // 127.0.0.1
	defer srv.Close()
	dir := t.TempDir()

	shot := filepath.Join(dir, "page.png")
	if err := Screenshot(ctx, srv.URL+"/", shot, 640, 400); err != nil {
		t.Fatal(err)
	}
	if blank, err := PNGBlank(shot); err != nil {
		t.Fatal(err)
	} else if blank {
		t.Error("screenshot of a page with a red block is blank")
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Width != 640 || cfg.Height != 400 {
		t.Errorf("screenshot is %dx%d, want 640x400", cfg.Width, cfg.Height)
	}

	blankShot := filepath.Join(dir, "blank.png")
	if err := Screenshot(ctx, srv.URL+"/blank", blankShot, 320, 200); err != nil {
		t.Fatal(err)
	}
	if blank, err := PNGBlank(blankShot); err != nil {
		t.Fatal(err)
	} else if !blank {
		t.Error("screenshot of an empty white page is not blank")
	}

	dom, err := DumpDOM(ctx, srv.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dom, "pelican-42") { // written by the page's script
		t.Errorf("DOM lacks the scripted word:\n%s", dom)
	}
}

// A browser that outlives its context is killed with its whole group: the
// page it was loading sees the connection go.
func TestToolsChromiumCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	gone := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answer
		select {
		case gone <- struct{}{}:
		default:
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err := DumpDOM(ctx, srv.URL+"/")
	if err == nil {
		t.Fatal("DumpDOM of a page that never loads succeeded")
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("DumpDOM returned %s after its context ended", d-3*time.Second)
	}
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the browser still holds its connection after DumpDOM returned")
	}
}

var pgbouncerUp = regexp.MustCompile(`(?m)^pgbouncer_up ([0-9.]+)$`)

func TestToolsExporter(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A pgbouncer whose admin console the exporter may use; the console
	// answers SHOW commands without any PostgreSQL behind it.
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	nowhere, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ini := fmt.Sprintf(`[databases]
app = host=127.0.0.1 port=%d
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = {dir}/users.txt
admin_users = exporter
logfile =
pidfile =
`, nowhere, port)
	bouncer, err := startPeer(ctx, "pgbouncer", port, true, "", map[string]string{
		"pgbouncer.ini": ini,
		"users.txt":     `"exporter" ""` + "\n",
	}, "/usr/sbin/pgbouncer", "{dir}/pgbouncer.ini")
	if err != nil {
		t.Fatalf("starting pgbouncer (run `make deps` if it is missing): %v", err)
	}
	defer bouncer.Close()

	for _, tc := range []struct {
		name, dsn, up string
	}{
		{"pgbouncer", fmt.Sprintf("postgres://exporter@127.0.0.1:%d/pgbouncer?sslmode=disable", port), "1"},
		{"nothing listening", fmt.Sprintf("postgres://exporter@127.0.0.1:%d/pgbouncer?sslmode=disable", nowhere), "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := StartPgbouncerExporter(ctx, tc.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			body, err := e.Scrape(ctx)
			if err != nil {
				t.Fatalf("%v\n%s", err, e.LogTail())
			}
			m := pgbouncerUp.FindStringSubmatch(body)
			if m == nil || m[1] != tc.up {
				t.Fatalf("want pgbouncer_up %s, got %q\nexporter log:\n%s\npgbouncer log:\n%s", tc.up, m, e.LogTail(), bouncer.LogTail())
			}
			if tc.up == "1" && !strings.Contains(body, "pgbouncer_version_info") {
				t.Errorf("no pgbouncer_version_info in a successful scrape:\n%s", body)
			}
			if out, err := CheckMetrics(ctx, body); err != nil {
				t.Logf("promtool on the exporter's exposition: %v\n%s", err, out)
			}
		})
	}
}
