package testbed

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// External tools for integration tests, all installed by `make deps`
// (scripts/deps.sh): promtool and Chromium from Debian, the
// prometheus-community pgbouncer_exporter built into CacheDir.

// PgbouncerExporterVersion is the pgbouncer_exporter that `make deps`
// builds from scripts/pgbouncer_exporter; scripts/deps.sh pins the same.
const PgbouncerExporterVersion = "0.12.1"

const (
	// PromtoolBinary is promtool, from Debian's prometheus package.
	PromtoolBinary = "/usr/bin/promtool"
	// ChromiumBinary is Debian's chromium launcher.
	ChromiumBinary = "/usr/bin/chromium"
)

// PgbouncerExporterBinary is where `make deps` puts pgbouncer_exporter;
// $SWITCHYARD_PGBOUNCER_EXPORTER overrides it.
func PgbouncerExporterBinary() string {
	if p := os.Getenv("SWITCHYARD_PGBOUNCER_EXPORTER"); p != "" {
		return p
	}
	return filepath.Join(CacheDir(), "pgbouncer_exporter-v"+PgbouncerExporterVersion, "pgbouncer_exporter")
}

// needTool fails with a pointer to `make deps` when bin is not there.
func needTool(what, bin string) error {
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("testbed: no %s at %s (run `make deps`): %w", what, bin, err)
	}
	return nil
}

// Exporter is a pgbouncer_exporter the bed runs on 127.0.0.1. Its Peer
// gives Port, PID, LogTail and Close (which ends it by PID, waits for it
// and removes its files).
type Exporter struct {
	*Peer
	client *http.Client
}

// StartPgbouncerExporter runs pgbouncer_exporter on a free loopback port
// against dsn (a pgbouncer admin console connection string, such as
// postgres://user@127.0.0.1:6432/pgbouncer?sslmode=disable) and waits
// until its HTTP endpoint answers. The exporter connects to pgbouncer
// only when scraped, so a dsn where nothing listens still starts, and
// reports pgbouncer_up 0.
func StartPgbouncerExporter(ctx context.Context, dsn string) (*Exporter, error) {
	bin := PgbouncerExporterBinary()
	if err := needTool("pgbouncer_exporter", bin); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	peer, err := startPeer(ctx, "pgbouncer_exporter", port, false, "", nil, bin,
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port),
		"--pgBouncer.connectionString="+dsn)
	if err != nil {
		return nil, err
	}
	e := &Exporter{Peer: peer, client: &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true},
		Timeout:   30 * time.Second,
	}}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = waitFor(wctx, peer.Exited(), 50*time.Millisecond, func(ctx context.Context) error {
		_, err := e.get(ctx, "/")
		return err
	})
	if err != nil {
		logTail := e.LogTail() // before Close removes the log
		e.Close()
		return nil, fmt.Errorf("pgbouncer_exporter did not answer HTTP: %w\n%s", err, logTail)
	}
	return e, nil
}

// URL is the exporter's metrics URL.
func (e *Exporter) URL() string { return fmt.Sprintf("http://127.0.0.1:%d/metrics", e.Port) }

// Scrape fetches /metrics, which makes the exporter query pgbouncer, and
// returns the exposition text.
func (e *Exporter) Scrape(ctx context.Context) (string, error) {
	return e.get(ctx, "/metrics")
}

func (e *Exporter) get(ctx context.Context, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", e.Port, path), nil)
	if err != nil {
		return "", err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %.500s", path, resp.Status, body)
	}
	return string(body), nil
}

// CheckMetrics pipes a Prometheus text exposition to `promtool check
// metrics` and returns what promtool printed. The error is non-nil when
// promtool finds a problem: a parse error, or a lint warning such as a
// counter without the _total suffix (promtool exits non-zero on both).
func CheckMetrics(ctx context.Context, exposition string) (string, error) {
	if err := needTool("promtool", PromtoolBinary); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, PromtoolBinary, "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("promtool check metrics: %w: %s", err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Screenshot loads url in headless Chromium with a width×height window
// and writes a PNG of it to pngPath.
func Screenshot(ctx context.Context, url, pngPath string, width, height int) error {
	abs, err := filepath.Abs(pngPath)
	if err != nil {
		return err
	}
	os.Remove(abs) // so that a stale file cannot pass for this one
	if _, err := runChromium(ctx,
		fmt.Sprintf("--window-size=%d,%d", width, height),
		"--screenshot="+abs, url); err != nil {
		return err
	}
	if fi, err := os.Stat(abs); err != nil || fi.Size() == 0 {
		return fmt.Errorf("chromium wrote no screenshot to %s: %v", abs, err)
	}
	return nil
}

// DumpDOM loads url in headless Chromium and returns the serialized DOM
// after the page's scripts ran.
func DumpDOM(ctx context.Context, url string) (string, error) {
	out, err := runChromium(ctx, "--dump-dom", url)
	return string(out), err
}

// runChromium runs headless Chromium once with a fresh profile (removed
// afterwards) and returns its stdout. Chromium runs in its own process
// group; the whole group is killed when ctx ends and once the browser
// has exited, so no renderer or zygote is left behind.
func runChromium(ctx context.Context, args ...string) ([]byte, error) {
	if err := needTool("chromium", ChromiumBinary); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "switchyard-chromium-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	argv := append([]string{
		"--headless",
		"--no-sandbox", // root in a container: no user namespaces for the sandbox
		"--disable-gpu",
		"--disable-dev-shm-usage",
		"--user-data-dir=" + filepath.Join(dir, "profile"),
		"--hide-scrollbars",
		"--no-first-run",
		"--no-default-browser-check",
		"--disable-extensions",
		"--disable-background-networking",
		"--disable-component-update",
		"--disable-sync",
		"--disable-breakpad",
		"--mute-audio",
		"--run-all-compositor-stages-before-draw",
		"--virtual-time-budget=5000",
	}, args...)
	cmd := exec.CommandContext(ctx, ChromiumBinary, argv...)
	logPath := filepath.Join(dir, "chromium.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, lf
	cmd.Env = append(os.Environ(),
		"HOME="+dir, // the launcher and Chromium write under $HOME/.config, .cache, .pki
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
		"DBUS_SESSION_BUS_ADDRESS=disabled:",
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Children that outlive the browser may hold stdout open: do not wait
	// for them longer than this once the browser is gone or ctx ended.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting chromium: %w", err)
	}
	err = cmd.Wait()
	// End whatever the browser left behind. While any member is left the
	// group ID cannot be recycled; with none left this finds nothing
	// (barring a new group leader taking the PID in these microseconds).
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		return stdout.Bytes(), fmt.Errorf("chromium %s: %w\n%s", strings.Join(args, " "), err, tail(logPath, 2000))
	}
	return stdout.Bytes(), nil
}

// PNGBlank decodes the PNG at path and reports whether every pixel has
// the same colour (an empty image counts as blank).
func PNGBlank(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	b := img.Bounds()
	if b.Empty() {
		return true, nil
	}
	r0, g0, b0, a0 := img.At(b.Min.X, b.Min.Y).RGBA()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if r, g, bl, a := img.At(x, y).RGBA(); r != r0 || g != g0 || bl != b0 || a != a0 {
				return false, nil
			}
		}
	}
	return true, nil
}
