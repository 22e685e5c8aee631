package testbed

import (
	"os"
	"path/filepath"
)

// NodePGVersion is the node-postgres (npm "pg") that `make deps` installs;
// scripts/deps.sh pins the same.
const NodePGVersion = "8.23.1"

// CacheDir is where `make deps` puts what does not come from Debian:
// $SWITCHYARD_CACHE, else $XDG_CACHE_HOME/switchyard, else
// ~/.cache/switchyard, as scripts/deps.sh.
func CacheDir() string {
	if cache := os.Getenv("SWITCHYARD_CACHE"); cache != "" {
		return cache
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "switchyard")
}

// NodeModules is the node_modules folder holding node-postgres, for
// NODE_PATH.
func NodeModules() string {
	return filepath.Join(CacheDir(), "node-pg-v"+NodePGVersion, "node_modules")
}
