package pooler

import (
	"strings"
	"testing"
)

func TestSessionState(t *testing.T) {
	for _, c := range []struct {
		sql  string
		pins bool
	}{
		{"SELECT 1", false},
		{"BEGIN; UPDATE t SET x = 1; COMMIT", false},
		{"SET LOCAL work_mem = '1MB'", false},
		{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", false},
		{"set application_name = 'x'", false},
		{"SET TIME ZONE 'UTC'", false},
		{"SET NAMES 'UTF8'", false},
		{"SET SESSION DateStyle TO ISO", false},
		{"RESET TimeZone", false},
		{"select 'set work_mem = 1'", false},
		{"SELECT $$ LISTEN x $$", false},
		{"/* LISTEN x */ SELECT 1", false},
		{"SELECT pg_advisory_xact_lock(1)", false},
		{"SET work_mem = '1MB'", true},
		{"SET search_path TO a, b", true},
		{"RESET ALL", true},
		{"SET ROLE other", true},
		{"SET SESSION AUTHORIZATION other", true},
		{"LISTEN chan", true},
		{"SELECT pg_advisory_lock(1)", true},
		{"SELECT pg_catalog.pg_try_advisory_lock(1)", true},
		{"SELECT set_config('work_mem', '1MB', false)", true},
		{"PREPARE p AS SELECT 1", true},
		{"CREATE TEMP TABLE t (x int)", true},
		{"create temporary table t (x int)", true},
		{"CREATE TABLE t (x int)", false},
		{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", true},
		{"DECLARE c CURSOR FOR SELECT 1", false},
		{`DECLARE "c" NO SCROLL CURSOR WITHOUT HOLD FOR SELECT 1`, false},
		{"DISCARD ALL", true},
		{"DISCARD PLANS", false},
		{"SELECT 1; LISTEN x", true},
		{"-- c\nLOAD 'auto_explain'", true},
	} {
		if got := sessionState(c.sql, false) != ""; got != c.pins {
			t.Errorf("%q: pins=%v, want %v", c.sql, got, c.pins)
		}
	}
	if sessionState("SET search_path TO a", true) != "" {
		t.Error("search_path follows a server that reports it")
	}
}

// Which pinning statements only change settings, so that the change can
// follow the client instead.
func TestFollowable(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want string // the changes, or "" when it must pin
	}{
		{"SET extra_float_digits = 3", "extra_float_digits=3"},
		{"SET SESSION work_mem TO '4MB'", "work_mem=4MB"},
		{"set Statement_Timeout = 5000;", "statement_timeout=5000"},
		{"SET lock_timeout = DEFAULT", "reset lock_timeout"},
		{"RESET work_mem", "reset work_mem"},
		{"SELECT 1; SET work_mem = '1MB'", "work_mem=1MB"},
		{"SET a_b = 'it''s'", "a_b=it's"},
		{"SET plan_cache_mode = Force_Custom_Plan", "plan_cache_mode=force_custom_plan"},
		{"SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;", "all"},
		{"DISCARD ALL", "all"},
		{"SET search_path TO a, b", ""},
		{"SET work_mem = E'1MB'", ""},
		{"SET work_mem = '1\\MB'", ""},
		{"SET myapp.tenant = 1", ""},
		{"SET ROLE other", ""},
		{"BEGIN; SET work_mem = '1MB'; COMMIT", ""},
		{"SET work_mem = '1MB'; LISTEN x", ""},
		{"SELECT set_config('work_mem', '1MB', false)", ""},
		{"PREPARE TRANSACTION 'x'", ""},
		// Resets of reported settings: recorded, so that the client goes
		// back to its startup value (a SET of one follows by report).
		{"RESET TimeZone", "reset TimeZone"},
		{"SET TIME ZONE DEFAULT", "reset TimeZone"},
		{"set time zone local;", "reset TimeZone"},
		{"SET SESSION TIME ZONE DEFAULT", "reset TimeZone"},
		{"SET application_name TO DEFAULT", "reset application_name"},
		{"SET NAMES DEFAULT", "reset client_encoding"},
		{"SELECT 1; RESET DateStyle", "reset DateStyle"},
		{"SET TIME ZONE 'UTC'", ""},
		{"SET application_name = 'default'", ""},
		{"BEGIN; RESET TimeZone; COMMIT", ""},
	} {
		ch, ok := followable(c.sql, false)
		var got []string
		for _, x := range ch {
			switch {
			case x.all:
				got = append(got, "all")
			case x.reset:
				got = append(got, "reset "+x.name)
			default:
				got = append(got, x.name+"="+x.value)
			}
		}
		if g := strings.Join(got, ","); !ok && g != "" || ok != (c.want != "") || g != c.want {
			t.Errorf("%q: %q ok=%v, want %q", c.sql, g, ok, c.want)
		}
	}
}

func TestDeallocateName(t *testing.T) {
	for sql, want := range map[string]string{
		"DEALLOCATE pdo_stmt_1": "pdo_stmt_1", "deallocate prepare S_1;": "s_1", `DEALLOCATE "S_1"`: "S_1",
		"DEALLOCATE ALL": "", "DEALLOCATE a; SELECT 1": "", "DEALLOCATE": "", `DEALLOCATE "x`: "",
	} {
		if got, _ := deallocateName(sql); got != want {
			t.Errorf("%q: %q, want %q", sql, got, want)
		}
	}
	if !Deallocates("SELECT 1; DISCARD ALL") || !Deallocates("deallocate prepare all") || Deallocates("RESET ALL") {
		t.Error("Deallocates")
	}
}

func FuzzSessionState(f *testing.F) {
	for _, s := range []string{"SET x = 1", "SELECT 'a''b' \"q\"\"x\"", "$a$ x $a$", "/* /* */ */", "E'\\''"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sessionState(s, false)
		followable(s, false)
		deallocateName(s)
		Deallocates(s)
	})
}
