//go:build tools

// Package pgbouncerexporter pins the prometheus-community pgbouncer_exporter
// that the test bed runs against pgbouncer.
package pgbouncerexporter

import _ "github.com/prometheus-community/pgbouncer_exporter"
