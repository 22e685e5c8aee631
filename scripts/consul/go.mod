// Tools module that builds a real Consul agent for the test bed.
// Kept apart from the project's go.mod: Consul's dependency graph is large and
// must never leak into Switchyard's own build. See scripts/deps.sh.
module github.com/switchyard-proxy/switchyard/scripts/consul

go 1.24

require (
	github.com/hashicorp/consul v1.21.0
	github.com/hashicorp/consul-awsauth v0.0.0-20250825122907-9e35fe9ded3a
)
