// Package testbed starts real servers on loopback for tests, benchmarks and
// the demo: PostgreSQL primaries with streaming replicas now, and (shaped
// the same way) the DCS servers and HA agents later. Every process is
// started by the bed, owned by PID and ended by PID.
package testbed

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is a server the bed started.
type Process struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
	log  string
}

// startProcess starts argv with stdout and stderr appended to logPath,
// as the postgres OS user when asPostgres is set and we are root.
func startProcess(name, logPath string, asPostgres bool, env []string, argv ...string) (*Process, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if asPostgres {
		if cred, err := postgresCredential(); err != nil {
			return nil, err
		} else if cred != nil {
			cmd.SysProcAttr.Credential = cred
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pin prefixes argv with taskset so it runs on cpus; argv is returned
// unchanged when cpus is empty.
func Pin(cpus string, argv ...string) []string {
	if cpus == "" {
		return argv
	}
	return append([]string{"taskset", "-c", cpus}, argv...)
}

// PID is the process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Signal sends sig to the process (not its group).
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	return p.cmd.Process.Signal(sig)
}

// Stop sends sig and waits up to grace for the exit, then kills the
// process and its group.
func (p *Process) Stop(sig syscall.Signal, grace time.Duration) {
	_ = p.Signal(sig)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
		<-p.done
	}
}

// LogTail returns the end of the process's log, for error messages.
func (p *Process) LogTail() string { return tail(p.log, 2000) }

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// postgresCredential returns the postgres user's credential when running
// as root (PostgreSQL refuses to run as root), nil otherwise.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("testbed: PostgreSQL cannot run as root and there is no postgres user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// chownPostgres gives path to the postgres user when running as root.
func chownPostgres(path string) error {
	cred, err := postgresCredential()
	if err != nil || cred == nil {
		return err
	}
	return os.Chown(path, int(cred.Uid), int(cred.Gid))
}

// runAs runs a short command to completion, as postgres if asked.
func runAs(ctx context.Context, asPostgres bool, argv ...string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	if asPostgres {
		cred, err := postgresCredential()
		if err != nil {
			return err
		}
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
	}
	return nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago,
// for a server the test bed starts. It is taken below the kernel's
// ephemeral range: a port from that range (what listening on port 0
// gives) can be handed in the meantime to any outgoing connection as its
// source port — the tests of other packages, running at the same time,
// make thousands — and the server then fails with "address already in
// use". Below the range only another FreePort, choosing at random among
// ~20 000 ports, could take it.
func FreePort() (int, error) {
	low := ephemeralLow()
	for range 200 {
		port := freePortFloor + rand.IntN(low-freePortFloor)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			l.Close()
			return port, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freePortFloor keeps FreePort clear of the well-known and registered
// ports services on the machine are likely to use.
const freePortFloor = 10000

// ephemeralLow is the first port of the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), 32768 if it cannot be read or leaves
// too little room below it.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil || n < freePortFloor+1000 {
		return 32768
	}
	return n
}

// waitFor calls ready every interval until it succeeds, ctx ends, or
// exited is closed.
func waitFor(ctx context.Context, exited <-chan struct{}, interval time.Duration, ready func(context.Context) error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %v)", ctx.Err(), err)
		case <-exited:
			return errors.New("process exited")
		case <-t.C:
		}
	}
}
