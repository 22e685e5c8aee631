package pooler

import "testing"

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

func FuzzSessionState(f *testing.F) {
	for _, s := range []string{"SET x = 1", "SELECT 'a''b' \"q\"\"x\"", "$a$ x $a$", "/* /* */ */", "E'\\''"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { sessionState(s, false) })
}
