// Package apisurface states which of orch's packages are its public Go
// API, and its tests hold the module to what that promises: outside
// commands, no package prints, exits or reads the environment (beyond
// the defaults listed in the tests' allow-list), every exported name of
// the API has a doc comment, and the programs under examples/ build on
// the public API alone.
//
// The public API is what Public lists. Everything else is orch's own and
// changes with the CLI without notice: the commands (cmd/orch, bench,
// examples/*), internal/ and modules/internal/, the local lab (lab/...)
// and the webhook server behind `orch serve` (serve).
package apisurface

// Public are the import paths, relative to the module, of the public
// API; a trailing "/..." stands for the packages under a folder (internal
// ones excepted).
var Public = []string{
	"engine",                 // runs plans (Run) and Go tasks (Converge); events and reports
	"engine/conn",            // the connection contract and registry (Register)
	"engine/conn/sshconn",    // the ssh connection, usable on its own (Dial, ConfigFor)
	"engine/conn/dockerconn", // the docker connection
	"plan",                   // loads plan files (Load, LoadFS) and runs them
	"plans",                  // the plans that ship with orch
	"inventory",              // inventories: New and Add, or Load from files
	"modules",                // the module contract and registry (Register, Prepare, Doc)
	"modules/...",            // each module family: file, command, check, docker, linode, digitalocean, …
	"testkit/...",            // real sshd fleets, module harnesses, zfs pools and recorded fixtures for tests
}
