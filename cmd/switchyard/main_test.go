package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

func TestVersionAndCheck(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "switchyard ") {
		t.Fatalf("-version: %d %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"-check", "-config", "../../configs/minimal.toml"}, &out, &errb); code != 0 {
		t.Fatalf("-check: exit %d: %s", code, errb.String())
	}
	for _, want := range []string{`client_login_timeout = "15s"`, `pool_mode = "none"`, `fallback = "primary"`} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("-check output lacks the default %s:\n%s", want, out.String())
		}
	}
}

func TestBadConfigNamesFileLineAndKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(path, []byte("[cluster]\nname = \"x\"\n[cluster.static]\nmembers = []\n[[listener]]\nname = \"rw\"\naddress = \"127.0.0.1:1\"\nrole = \"writer\"\n"), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"-check", "-config", path}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{path + ":4: cluster.static.members:", path + `:8: listener[0].role: "writer"`} {
		if !strings.Contains(errb.String(), want) {
			t.Fatalf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
}

// The real binary reloads on SIGHUP (a valid file applies, an invalid
// one is refused with every error named and the binary runs on), and
// stops on SIGTERM: it closes its listeners and exits 0.
func TestSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := testbed.BuildSwitchyard(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, "sy.toml")
	text := `[admin]
listen = "127.0.0.1:0"
[cluster]
name = "x"
[cluster.static]
members = [{ name = "a", address = "127.0.0.1:1", role = "primary" }]
[[listener]]
name = "rw"
address = "` + addr + `"
role = "primary"
`
	os.WriteFile(cfg, []byte(text), 0o600)
	var logs testbed.LogBuffer
	cmd := exec.Command(bin, "-config", cfg)
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("never listened: %v", err)
		}
		select {
		case err := <-done:
			t.Fatalf("exited early: %v\n%s", err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	// The binary re-executed itself (same PID) with sysmon's deep sleep off.
	if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid)); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(string(env), "GODEBUG="+schedtraceOff) {
		t.Fatalf("GODEBUG not set in the running binary's environment: %q", env)
	}
	// The log level goes to debug: the reload's own line says so.
	os.WriteFile(cfg, []byte("[log]\nlevel = \"debug\"\n"+text), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, &logs, "log.level = debug")
	os.WriteFile(cfg, []byte(text+"[limits]\nconnect_timeout = \"soon\"\nnonsense = 1\n"), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, &logs, "limits.nonsense")
	waitLog(t, &logs, "limits.connect_timeout")
	if c, err := net.Dial("tcp", addr); err != nil {
		t.Fatalf("after a refused reload: %v", err)
	} else {
		c.Close()
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("did not exit after SIGTERM")
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Fatalf("no shutdown log line:\n%s", logs.String())
	}
}

// waitLog waits up to 10 s for text in logs.
func waitLog(t *testing.T, logs *testbed.LogBuffer, text string) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(logs.String(), text) {
		select {
		case <-deadline.C:
			t.Fatalf("no %q in the log:\n%s", text, logs.String())
		case <-tick.C:
		}
	}
}
