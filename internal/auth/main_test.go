package auth_test

import (
	"os"
	"testing"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// pg is a real PostgreSQL for the login tests; nil under -short.
var pg *testbed.PGCluster

func TestMain(m *testing.M) {
	os.Exit(testbed.MainWithPG(m, testbed.PGOptions{}, &pg))
}
