// Package pkg is the pkg module: packages installed, removed or kept at
// the catalogue's version, with apt/dpkg on Debian and Ubuntu and with
// pkg(8) on FreeBSD (and in its jails), several names in one transaction.
package pkg

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/orch-dev/orch/modules"
)

func init() {
	modules.Register(modules.Info{ID: "pkg", New: func() any { return new(Pkg) }, Doc: `Installs, removes or upgrades packages with the host's own package manager.

States: "present" installs what is missing; "absent" removes what is
installed; "latest" installs what is missing and upgrades what is older than
the version the package manager would install (its candidate). All the
names of one call go in one transaction (one apt-get or pkg command).

Backends, chosen from the pkg_manager host fact:
- apt (Debian, Ubuntu): facts from one dpkg-query for all of a host's pkg
  tasks, and one apt-cache policy for the candidates of "latest" tasks;
  changes with apt-get install/remove, non-interactive (DEBIAN_FRONTEND=
  noninteractive, -y; a config file changed locally is kept:
  --force-confdef --force-confold). apt-get remove also removes the
  packages that depend on what it removes.
- pkg (FreeBSD): facts from pkg info (one per jail) and pkg rquery -U;
  changes with pkg install -y -U and pkg delete -y. jail= works inside a
  jail from its host (pkg -j JAIL), so a role on the jail host provisions
  its jails.

The catalogue is never refreshed behind your back: not in a probe, and not
by pkg install (-U). update_cache=True makes the refresh a visible part of
the task (apt-get update, pkg update), when the catalogue is older than
cache_max_age: before the task's install, and for state="latest" on its
own too, so that "latest" means the mirror's latest. A refresh reports the
task changed. A host whose catalogue was never refreshed (a fresh image)
needs update_cache=True before anything can be installed.

The package manager's lock is waited for, up to lock_timeout: apt-get with
DPkg::Lock::Timeout, retrying while apt's list lock is held; pkg with
LOCK_WAIT and LOCK_RETRIES. Then the task fails naming the lock and its
holder. A package the catalogue does not have fails the task, naming the
package, and the host's later tasks are not run; "latest" finds that in
the check already.

Effects: pkg:NAME for each package (pkg:NAME@JAIL in a jail), and with
update_cache the catalogue (pkg_cache:@, pkg_candidate:*). A service task
watches a package with watch=["pkg:nginx"]. Installing a package is not
declared as changing paths: which files a package writes is known only
once it is installed, and declaring the whole file system would make every
later task re-checked and every watcher fire on each install (a restart for
a config that did not change). Put the file tasks that configure a package
after its pkg task: they replace what the package installed.

Verified against: apt on the Debian 12 lab containers, live over SSH under
sudo as a non-root user, through the lab's apt proxy (install with a cache
refresh, rerun, remove, a missing package, the dpkg lock held); dpkg-query,
apt-cache and stat output captured on Debian 12 and transcribed for Ubuntu
24.04; FreeBSD's pkg only on outputs transcribed from freebsd/pkg 1.21.3's
sources and tests, not on a FreeBSD host.`})
}

// Pkg is the argument struct of pkg().
type Pkg struct {
	Names       []string      `arg:"names,required" doc:"package names, installed or removed in one transaction"`
	State       string        `arg:"state" default:"present" doc:"present | absent | latest"`
	UpdateCache bool          `arg:"update_cache" default:"False" doc:"refresh the catalogue (apt-get update, pkg update) when it is older than cache_max_age, as part of this task"`
	CacheMaxAge time.Duration `arg:"cache_max_age" default:"1h" doc:"how old the catalogue may be before update_cache refreshes it"`
	Jail        string        `arg:"jail" doc:"FreeBSD: the jail (name or JID) to manage packages in, with pkg -j"`
	LockTimeout time.Duration `arg:"lock_timeout" default:"60s" doc:"how long to wait for the package manager's lock before failing"`
}

var (
	_ modules.Task       = (*Pkg)(nil)
	_ modules.Validator  = (*Pkg)(nil)
	_ modules.FactReader = (*Pkg)(nil)
	_ modules.Effector   = (*Pkg)(nil)
	_ modules.Describer  = (*Pkg)(nil)
)

func (p *Pkg) Describe() string { return "pkg " + strings.Join(p.Names, " ") }

var (
	// The union of Debian's (policy 5.6.7) and FreeBSD's package names;
	// never an option.
	validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._-]*$`)
	validJail = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
)

func (p *Pkg) Validate(*modules.Env) error {
	if len(p.Names) == 0 {
		return fmt.Errorf("names is empty")
	}
	seen := map[string]bool{}
	for _, n := range p.Names {
		if !validName.MatchString(n) {
			return fmt.Errorf("%q is not a package name", n)
		}
		if seen[n] {
			return fmt.Errorf("%q is named twice", n)
		}
		seen[n] = true
	}
	switch p.State {
	case "present", "absent", "latest":
	default:
		return fmt.Errorf("state %q is not one of present, absent, latest", p.State)
	}
	if p.Jail != "" && !validJail.MatchString(p.Jail) {
		return fmt.Errorf("jail %q is not a jail name or JID", p.Jail)
	}
	if p.CacheMaxAge < 0 || p.LockTimeout < 0 {
		return fmt.Errorf("cache_max_age and lock_timeout cannot be negative")
	}
	return nil
}

var managerKey = modules.FactKey{Fact: "pkg_manager"}

// Facts asks for the package manager, each package's installed state,
// the candidates for "latest", and the catalogue's age for update_cache.
func (p *Pkg) Facts() []modules.FactKey {
	keys := []modules.FactKey{managerKey}
	for _, n := range p.Names {
		keys = append(keys, modules.FactKey{Fact: FactInstalled, Key: Key(n, p.Jail)})
	}
	if p.State == "latest" {
		for _, n := range p.Names {
			keys = append(keys, modules.FactKey{Fact: FactCandidate, Key: Key(n, p.Jail)})
		}
	}
	if p.UpdateCache {
		keys = append(keys, modules.FactKey{Fact: FactCache, Key: CacheKey(p.Jail)})
	}
	return keys
}

// Effects are the packages and, with update_cache, the catalogue.
func (p *Pkg) Effects() []string {
	var out []string
	for _, n := range p.Names {
		out = append(out, FactInstalled+":"+Key(n, p.Jail))
	}
	if p.UpdateCache {
		out = append(out, FactCache+":"+CacheKey(p.Jail), FactCandidate+":*")
	}
	return out
}

// Probe is empty: everything comes from the shared facts.
func (p *Pkg) Probe(modules.ProbeRequest) string { return "" }

// plan is what a check decided to do.
type plan struct {
	refresh string   // why the catalogue is refreshed; "" when it is not
	install []string // names to install or upgrade, in the order given
	remove  []string
	changes []change // for the reason: install hello, upgrade nginx 1.1 -> 1.2
	diff    []string // "-nginx 1.1", "+nginx 1.2"
	ok      []string // for the no-change reason: "nginx 1.1"
}

// change is one package's change: verb "install", "upgrade" or "remove".
type change struct{ verb, what string }

// describeChanges groups changes by verb, in the order verbs first
// appear: "install hello, curl; upgrade nginx 1.1 -> 1.2".
func describeChanges(cs []change) string {
	var verbs []string
	by := map[string][]string{}
	for _, c := range cs {
		if by[c.verb] == nil {
			verbs = append(verbs, c.verb)
		}
		by[c.verb] = append(by[c.verb], c.what)
	}
	var parts []string
	for _, v := range verbs {
		parts = append(parts, v+" "+strings.Join(by[v], ", "))
	}
	return strings.Join(parts, "; ")
}

func (p *Pkg) Check(req modules.CheckRequest, resp *modules.CheckResponse) {
	b, err := p.backend(req)
	if err != nil {
		resp.Err = err
		return
	}
	pl, err := p.decide(req, b)
	if err != nil {
		resp.Err = err
		return
	}
	where := ""
	if p.Jail != "" {
		where = " in jail " + p.Jail
	}
	if pl.refresh == "" && len(pl.install) == 0 && len(pl.remove) == 0 {
		switch p.State {
		case "absent":
			resp.Reason = "not installed" + where + ": " + strings.Join(pl.ok, ", ")
		case "latest":
			resp.Reason = "at the candidate version" + where + ": " + strings.Join(pl.ok, ", ")
		default:
			resp.Reason = "installed" + where + ": " + strings.Join(pl.ok, ", ")
		}
		return
	}
	resp.Changed = true
	what := describeChanges(pl.changes)
	switch {
	case pl.refresh != "" && what == "":
		resp.Reason = fmt.Sprintf("refresh the %s (%s)%s; then install or upgrade what is newer", b.catalogue, pl.refresh, where)
	case pl.refresh != "":
		resp.Reason = fmt.Sprintf("refresh the %s (%s), then %s%s", b.catalogue, pl.refresh, what, where)
	default:
		resp.Reason = what + where
	}
	resp.Diff = "--- packages" + where + "\n+++ packages" + where + "\n"
	if pl.refresh != "" {
		resp.Diff += "@@ refresh the " + b.catalogue + " @@\n"
	}
	for _, d := range pl.diff {
		resp.Diff += d + "\n"
	}
	resp.Apply = b.script(p, pl)
}

// decide compares the facts with the wanted state.
func (p *Pkg) decide(req modules.CheckRequest, b backend) (plan, error) {
	var pl plan
	stale := ""
	if p.UpdateCache {
		c, _ := req.Facts[modules.FactKey{Fact: FactCache, Key: CacheKey(p.Jail)}].(Cache)
		if c.Now == 0 {
			return pl, fmt.Errorf("the %s's age could not be read", b.catalogue)
		}
		switch age := time.Duration(c.Now-c.Updated) * time.Second; {
		case c.Updated == 0:
			stale = "never refreshed"
		case age > p.CacheMaxAge:
			stale = age.Round(time.Minute).String() + " old, over cache_max_age " + p.CacheMaxAge.String()
		}
	}
	var missing []string
	for _, n := range p.Names {
		st, ok := req.Facts[modules.FactKey{Fact: FactInstalled, Key: Key(n, p.Jail)}].(Installed)
		switch {
		case !ok:
			return pl, fmt.Errorf("no facts gathered for package %s", n)
		case st.Err != "":
			return pl, fmt.Errorf("%s", st.Err)
		case st.Manager != b.manager:
			return pl, fmt.Errorf("the package facts come from %q, but the host's package manager is %q", st.Manager, b.manager)
		}
		switch p.State {
		case "absent":
			if st.Present {
				pl.remove = append(pl.remove, n)
				pl.changes = append(pl.changes, change{"remove", n})
				pl.diff = append(pl.diff, "-"+n+" "+st.Version)
			} else {
				pl.ok = append(pl.ok, n)
			}
		case "present":
			if st.Installed {
				pl.ok = append(pl.ok, n+" "+st.Version)
			} else {
				pl.install = append(pl.install, n)
				pl.changes = append(pl.changes, change{"install", n})
				pl.diff = append(pl.diff, "+"+n)
			}
		case "latest":
			c, _ := req.Facts[modules.FactKey{Fact: FactCandidate, Key: Key(n, p.Jail)}].(Candidate)
			switch {
			case c.Version == "" && !st.Installed:
				if stale == "" {
					missing = append(missing, n+noteOf(c))
					continue
				}
				pl.install = append(pl.install, n) // the refresh may bring it
				pl.changes = append(pl.changes, change{"install", n})
				pl.diff = append(pl.diff, "+"+n)
			case !st.Installed:
				pl.install = append(pl.install, n)
				pl.changes = append(pl.changes, change{"install", n + " " + c.Version})
				pl.diff = append(pl.diff, "+"+n+" "+c.Version)
			case c.Version == "" && c.Note != "":
				return pl, fmt.Errorf("cannot tell the candidate version of %s: %s", n, c.Note)
			case c.Version == "":
				pl.ok = append(pl.ok, n+" "+st.Version+" (not in the "+b.catalogue+")")
			case b.newer(c.Version, st.Version):
				pl.install = append(pl.install, n)
				pl.changes = append(pl.changes, change{"upgrade", n + " " + st.Version + " -> " + c.Version})
				pl.diff = append(pl.diff, "-"+n+" "+st.Version, "+"+n+" "+c.Version)
			default:
				pl.ok = append(pl.ok, n+" "+st.Version)
			}
		}
	}
	if len(missing) > 0 {
		return pl, fmt.Errorf("no such package in the %s: %s (refresh it with update_cache=True if it is old)", b.catalogue, strings.Join(missing, ", "))
	}
	// A refresh goes before an install, and for "latest" on its own: the
	// old catalogue cannot say what the mirror's latest is. A removal
	// needs none.
	if stale != "" && (len(pl.install) > 0 || p.State == "latest") {
		pl.refresh = stale
	}
	return pl, nil
}

func noteOf(c Candidate) string {
	if c.Note == "" {
		return ""
	}
	return " (" + c.Note + ")"
}

// backend is one package manager's commands.
type backend struct {
	manager   string
	catalogue string // what it calls its catalogue, for messages
	newer     func(candidate, installed string) bool
	script    func(p *Pkg, pl plan) string
}

func (p *Pkg) backend(req modules.CheckRequest) (backend, error) {
	mgr, _ := req.Facts[managerKey].(string)
	switch mgr {
	case "apt":
		if p.Jail != "" {
			return backend{}, fmt.Errorf("jail= is for FreeBSD's pkg; this host's package manager is apt")
		}
		return backend{manager: "apt", catalogue: "apt cache", newer: aptNewer, script: aptScript}, nil
	case "pkg":
		return backend{manager: "pkg", catalogue: "pkg catalogue", newer: freebsdNewer, script: freebsdScript}, nil
	}
	return backend{}, fmt.Errorf("this host's package manager is %q; the pkg module drives apt (Debian, Ubuntu) and FreeBSD's pkg", mgr)
}

// aptNewer: apt's candidate is what apt-get install would install, and it
// is never older than the installed version unless a pin of priority 1000
// or more asks for that downgrade; so any difference is a change apt makes.
func aptNewer(candidate, installed string) bool { return candidate != installed }

// freebsdNewer: pkg install upgrades only to a newer version.
func freebsdNewer(candidate, installed string) bool {
	return freebsdVersionCmp(candidate, installed) > 0
}

func seconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }
