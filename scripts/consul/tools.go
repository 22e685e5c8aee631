//go:build tools

// Package consul pins the Consul agent that the test bed runs.
package consul

import _ "github.com/hashicorp/consul"
