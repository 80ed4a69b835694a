package inventory

import (
	"slices"
	"strings"
	"sync"
)

// The connection types beyond orch's own (ssh, local, docker, jail) that
// hosts may select: those a program registered with conn.Register.
var (
	connMu     sync.RWMutex
	extraConns = map[string]bool{}
)

// RegisterConnection makes name a value the connection var of a host may
// take. conn.Register calls it for every connection type, so that hosts
// can select the ones a program adds; a name no dialer has (an Ansible
// plugin such as winrm) still makes a host unusable.
func RegisterConnection(name string) {
	connMu.Lock()
	defer connMu.Unlock()
	extraConns[name] = true
}

func registeredConnection(name string) bool {
	connMu.RLock()
	defer connMu.RUnlock()
	return extraConns[name]
}

// connectionNames lists the connections a host may select, for errors.
func connectionNames() string {
	names := []string{"ssh", "local", "docker", "jail"}
	connMu.RLock()
	for n := range extraConns {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	connMu.RUnlock()
	slices.Sort(names[4:])
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
