package main

import (
	"os"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/digitalocean"
	"github.com/orch-dev/orch/modules/linode"
)

// The library reads no environment: these are the variables orch reads
// for it, each the default of an option.

// stateDir is where runs are journaled (engine.Options.StateDir):
// $ORCH_STATE, else .orch in the working directory.
func stateDir() string {
	if d := os.Getenv("ORCH_STATE"); d != "" {
		return d
	}
	return engine.DefaultStateDir
}

// cloudEndpoints are the APIs of the cloud modules and of `-i linode:TAG`
// (engine.Options.Endpoints), read with getenv: os.Getenv, or the lab's
// variables for a --lab run.
func cloudEndpoints(getenv func(string) string) map[string]modules.Endpoint {
	eps := map[string]modules.Endpoint{}
	for provider, vars := range map[string][2]string{
		linode.Provider:       {linode.TokenEnv, linode.URLEnv},
		digitalocean.Provider: {digitalocean.TokenEnv, digitalocean.URLEnv},
	} {
		if ep := (modules.Endpoint{Token: getenv(vars[0]), URL: getenv(vars[1])}); ep != (modules.Endpoint{}) {
			eps[provider] = ep
		}
	}
	return eps
}

// dockerHost is the engine of the docker connection
// (engine.Options.DockerHost): $DOCKER_HOST, as the docker CLI reads it.
func dockerHost() string { return os.Getenv("DOCKER_HOST") }
