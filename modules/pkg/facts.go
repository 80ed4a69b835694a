package pkg

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/orch-dev/orch/internal/freebsd"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/hostfacts"
)

// The shared facts of the pkg module. Each is gathered once per host for
// all of its pkg tasks, in the probe exchange, by a script that picks the
// package manager the way the pkg_manager host fact does (the fact may not
// be known yet when the script is written).
const (
	// FactInstalled is what is installed: one dpkg-query, or one pkg info
	// per jail, for every package a host's tasks name. Its keys are the
	// packages' keys (Key), so its state keys are the effects of the tasks
	// that change them ("pkg:nginx").
	FactInstalled = "pkg"
	// FactCandidate is the version the package manager would install: one
	// apt-cache policy, or one pkg rquery per jail, for the packages of
	// state="latest" tasks.
	FactCandidate = "pkg_candidate"
	// FactCache is the age of the package catalogue, for update_cache=True:
	// key "@" is the host's, "@JAIL" a jail's.
	FactCache = "pkg_cache"
)

func init() {
	modules.RegisterFact(FactInstalled, installedFact{})
	modules.RegisterFact(FactCandidate, candidateFact{})
	modules.RegisterFact(FactCache, cacheFact{})
}

// Key is the fact key of a package: its name, and "@JAIL" when it lives
// in a FreeBSD jail ("nginx@www").
func Key(name, jail string) string {
	if jail == "" {
		return name
	}
	return name + "@" + jail
}

// CacheKey is the fact key of the catalogue of the host ("@") or a jail.
func CacheKey(jail string) string { return "@" + jail }

// splitKey undoes Key.
func splitKey(key string) (name, jail string) {
	name, jail, _ = strings.Cut(key, "@")
	return name, jail
}

// Installed is what the "pkg" fact knows of one package.
type Installed struct {
	Manager   string // apt | pkg | the pkg_manager value of a host orch cannot drive
	Installed bool   // fully installed (dpkg status "installed"; listed by pkg info)
	Present   bool   `json:",omitempty"` // in a state that a removal changes: installed, or part way (unpacked, half-configured…)
	Version   string `json:",omitempty"` // the installed version
	Status    string `json:",omitempty"` // apt: dpkg's db:Status-Abbrev ("ii ", "rc "); "" when dpkg does not know the package
	Err       string `json:",omitempty"` // why the package manager could not be asked

	dpkg string // apt: "STATUS VERSION" as dpkg-query printed them, for Recheck
}

// Candidate is what the "pkg_candidate" fact knows of one package.
type Candidate struct {
	Manager string
	Version string `json:",omitempty"` // "" when the catalogue has none
	Note    string `json:",omitempty"` // what the package manager said instead, if anything
	raw     string // apt: the Candidate field as printed ("(none)"), "" without one
}

// Cache is what the "pkg_cache" fact knows of one catalogue.
type Cache struct {
	Manager string
	Now     int64  // the host's clock, seconds since the epoch
	Updated int64  `json:",omitempty"` // when the catalogue was last refreshed; 0 if never (or it is empty)
	stat    string // what it was read from, but the clock, for Recheck
}

// managerScript prints the package manager into _orch_pm, the same way
// the pkg_manager host fact decides it.
func managerScript() string {
	return "_orch_pm=$(\n" + hostfacts.Facts["pkg_manager"].Command + "\n)\necho \"#manager $_orch_pm\"\n"
}

// byJail groups keys by jail, in the order the jails first appear.
func byJail(keys []string) (jails []string, names map[string][]string) {
	names = map[string][]string{}
	for _, k := range keys {
		n, j := splitKey(k)
		if _, seen := names[j]; !seen {
			jails = append(jails, j)
		}
		names[j] = append(names[j], n)
	}
	return jails, names
}

func quoteAll(words []string) string {
	var b strings.Builder
	for _, w := range words {
		b.WriteString(" " + modules.Quote(w))
	}
	return b.String()
}

// pkgCmd is the FreeBSD pkg command for the host or a jail.
func pkgCmd(jail string) string {
	if jail == "" {
		return "pkg"
	}
	return "pkg -j " + modules.Quote(jail)
}

// lines splits output into its lines, without the last newline.
func lines(out []byte) []string {
	s := strings.TrimSuffix(string(out), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// section is the output of one jail's command in a fact's output.
type section struct {
	jail  string
	lines []string
	exit  int
}

// parsed is a fact's output cut into its parts: the manager, and for
// apt one section (jail "") or for FreeBSD one per "#jail J" header, each
// closed by "#exit N".
type parsed struct {
	manager  string
	sections []section
}

func parse(fact string, out []byte) (parsed, error) {
	ls := lines(out)
	if len(ls) == 0 || !strings.HasPrefix(ls[0], "#manager ") {
		return parsed{}, fmt.Errorf("%s facts: unexpected output %q", fact, strings.TrimSpace(string(out)))
	}
	p := parsed{manager: strings.TrimPrefix(ls[0], "#manager ")}
	var cur *section
	for _, l := range ls[1:] {
		switch {
		case strings.HasPrefix(l, "#jail "):
			p.sections = append(p.sections, section{jail: strings.TrimPrefix(l, "#jail ")})
			cur = &p.sections[len(p.sections)-1]
		case strings.HasPrefix(l, "#exit "):
			if cur == nil {
				return parsed{}, fmt.Errorf("%s facts: %q outside a section", fact, l)
			}
			n, err := strconv.Atoi(strings.TrimPrefix(l, "#exit "))
			if err != nil {
				return parsed{}, fmt.Errorf("%s facts: bad exit line %q", fact, l)
			}
			cur.exit = n
			cur = nil
		case cur == nil:
			return parsed{}, fmt.Errorf("%s facts: unexpected line %q", fact, l)
		default:
			cur.lines = append(cur.lines, l)
		}
	}
	return p, nil
}

// jailHeader opens a section: "#jail " for the host, "#jail www" for a jail.
func jailHeader(jail string) string { return "echo " + modules.Quote("#jail "+jail) + "\n" }

const exitLine = "echo \"#exit $?\"\n"

type installedFact struct{}

var _ modules.FactRechecker = installedFact{}

// dpkgFormat prints a package per line: name, status, version.
const dpkgFormat = `'${Package}\t${db:Status-Abbrev}\t${Version}\n'`

// Script asks dpkg-query about every package at once (it prints a line
// for each package dpkg knows of, and a "no packages found" line for the
// others), or runs pkg info once per jail (every installed package, as
// "name-version comment").
func (installedFact) Script(keys []string) string {
	jails, names := byJail(keys)
	var b strings.Builder
	b.WriteString(managerScript())
	b.WriteString("case $_orch_pm in\napt)\n")
	if hostNames := names[""]; len(hostNames) > 0 {
		b.WriteString(jailHeader("") + "dpkg-query -W -f=" + dpkgFormat + " --" + quoteAll(hostNames) + " 2>&1\n" + exitLine)
	}
	b.WriteString(";;\npkg)\n")
	for _, j := range jails {
		b.WriteString(jailHeader(j) + pkgCmd(j) + " info 2>&1\n" + exitLine)
	}
	b.WriteString(";;\nesac\n")
	return b.String()
}

func (installedFact) Parse(out []byte, keys []string) (map[string]any, error) {
	p, err := parse(FactInstalled, out)
	if err != nil {
		return nil, err
	}
	res := make(map[string]any, len(keys))
	for _, k := range keys {
		res[k] = Installed{Manager: p.manager}
	}
	switch p.manager {
	case "apt":
		for _, s := range p.sections {
			if err := parseDpkg(s, keys, res); err != nil {
				return nil, err
			}
		}
	case "pkg":
		for _, s := range p.sections {
			parsePkgInfo(s, keys, res)
		}
	}
	return res, nil
}

// parseDpkg reads dpkg-query -W lines. Exit 1 means some package was not
// found, which is an answer; 2 and above are errors.
func parseDpkg(s section, keys []string, res map[string]any) error {
	if s.exit > 1 {
		return fmt.Errorf("dpkg-query failed (exit %d): %s", s.exit, strings.Join(s.lines, "; "))
	}
	for _, l := range s.lines {
		if strings.HasPrefix(l, "dpkg-query: no packages found matching ") {
			continue
		}
		f := strings.Split(l, "\t")
		if len(f) != 3 || len(f[1]) != 3 {
			return fmt.Errorf("dpkg-query: unexpected line %q", l)
		}
		if !slices.Contains(keys, f[0]) {
			continue
		}
		st := Installed{Manager: "apt", Status: f[1], Version: f[2], dpkg: f[1] + " " + f[2]}
		// The second letter is the package's state: n (not installed)
		// and c (config files only) count as absent; i is installed;
		// anything else is part way and apt-get can finish or undo it.
		switch f[1][1] {
		case 'i':
			st.Installed, st.Present = true, true
		case 'n', 'c':
			st.Version = ""
		default:
			st.Present = true
		}
		if prev := res[f[0]].(Installed); prev.Installed {
			continue // another architecture's copy is installed: keep it
		}
		res[f[0]] = st
	}
	return nil
}

// parsePkgInfo reads pkg info; a failure (pkg not bootstrapped, the jail
// missing) is recorded on the jail's packages.
func parsePkgInfo(s section, keys []string, res map[string]any) {
	pkgs, err := freebsd.ParsePkgInfo([]byte(strings.Join(s.lines, "\n")))
	if s.exit != 0 || err != nil {
		why := strings.Join(s.lines, "; ")
		if why == "" && err != nil {
			why = err.Error()
		}
		for _, k := range keys {
			if _, j := splitKey(k); j == s.jail {
				res[k] = Installed{Manager: "pkg", Err: fmt.Sprintf("%s info failed (exit %d): %s", pkgCmd(s.jail), s.exit, why)}
			}
		}
		return
	}
	for _, p := range pkgs {
		k := Key(p.Name, s.jail)
		if _, want := res[k]; want {
			res[k] = Installed{Manager: "pkg", Installed: true, Present: true, Version: p.Version}
		}
	}
}

// Recheck holds while the package is as gathered: dpkg-query prints the
// same status and version, or pkg query the same version ("" when not
// installed).
func (installedFact) Recheck(key string, value any) string {
	st, ok := value.(Installed)
	if !ok || st.Err != "" {
		return "false"
	}
	name, jail := splitKey(key)
	switch st.Manager {
	case "apt":
		return fmt.Sprintf("[ \"$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' -- %s 2>/dev/null)\" = %s ]", modules.Quote(name), modules.Quote(st.dpkg))
	case "pkg":
		return fmt.Sprintf("[ \"$(%s query '%%v' %s 2>/dev/null)\" = %s ]", pkgCmd(jail), modules.Quote(name), modules.Quote(st.Version))
	}
	return "false"
}

type candidateFact struct{}

var _ modules.FactRechecker = candidateFact{}

// Script asks apt-cache policy about every package at once (a block per
// package the cache knows), or pkg rquery per jail without refreshing the
// catalogue (-U): a line "name version" per package the repositories have.
func (candidateFact) Script(keys []string) string {
	jails, names := byJail(keys)
	var b strings.Builder
	b.WriteString(managerScript())
	b.WriteString("case $_orch_pm in\napt)\n")
	if hostNames := names[""]; len(hostNames) > 0 {
		b.WriteString(jailHeader("") + "LC_ALL=C apt-cache policy" + quoteAll(hostNames) + " 2>&1\n" + exitLine)
	}
	b.WriteString(";;\npkg)\n")
	for _, j := range jails {
		b.WriteString(jailHeader(j) + pkgCmd(j) + " rquery -U '%n %v'" + quoteAll(names[j]) + " 2>&1\n" + exitLine)
	}
	b.WriteString(";;\nesac\n")
	return b.String()
}

func (candidateFact) Parse(out []byte, keys []string) (map[string]any, error) {
	p, err := parse(FactCandidate, out)
	if err != nil {
		return nil, err
	}
	res := make(map[string]any, len(keys))
	for _, k := range keys {
		res[k] = Candidate{Manager: p.manager}
	}
	for _, s := range p.sections {
		var notes []string
		switch p.manager {
		case "apt":
			notes = parsePolicy(s, res)
		case "pkg":
			notes = parseRquery(s, res)
		}
		if len(notes) > 0 || (s.exit != 0 && p.manager == "apt") {
			note := strings.Join(notes, "; ")
			if s.exit != 0 {
				note = fmt.Sprintf("exit %d: %s", s.exit, note)
			}
			for _, k := range keys {
				if c := res[k].(Candidate); c.Version == "" && jailOf(k) == s.jail {
					c.Note = note
					res[k] = c
				}
			}
		}
	}
	return res, nil
}

func jailOf(key string) string { _, j := splitKey(key); return j }

// parsePolicy reads apt-cache policy: "NAME:" then indented fields, of
// which "  Candidate: VERSION" ("(none)" when no source has it). A package
// the cache does not know prints nothing. Other lines are notes.
func parsePolicy(s section, res map[string]any) (notes []string) {
	cur := ""
	for _, l := range s.lines {
		switch {
		case !strings.HasPrefix(l, " ") && strings.HasSuffix(l, ":"):
			cur = strings.TrimSuffix(l, ":")
		case strings.HasPrefix(l, "  Candidate: ") && cur != "":
			if c, ok := res[cur].(Candidate); ok {
				c.raw = strings.TrimPrefix(l, "  Candidate: ")
				if c.raw != "(none)" {
					c.Version = c.raw
				} else {
					c.Note = "apt-cache policy: no candidate (a virtual package, or none of the sources has it)"
				}
				res[cur] = c
			}
		case strings.HasPrefix(l, " "):
		default:
			notes = append(notes, l)
		}
	}
	return notes
}

// parseRquery reads pkg rquery '%n %v' lines. With several repositories
// the first one listed wins, as pkg install picks by priority then order.
// Exit 1 with no lines means none of the names is in the catalogue.
func parseRquery(s section, res map[string]any) (notes []string) {
	for _, l := range s.lines {
		name, version, ok := strings.Cut(l, " ")
		c, want := res[Key(name, s.jail)].(Candidate)
		switch {
		case ok && want && !strings.Contains(version, " "):
			if c.Version == "" {
				c.Version = version
				res[Key(name, s.jail)] = c
			}
		case ok && want:
		default:
			notes = append(notes, l)
		}
	}
	return notes
}

// Recheck holds while the package manager would install the same version.
func (candidateFact) Recheck(key string, value any) string {
	c, ok := value.(Candidate)
	if !ok {
		return "false"
	}
	name, jail := splitKey(key)
	switch c.Manager {
	case "apt":
		return fmt.Sprintf("[ \"$(LC_ALL=C apt-cache policy %s 2>/dev/null | sed -n 's/^  Candidate: //p')\" = %s ]", modules.Quote(name), modules.Quote(c.raw))
	case "pkg":
		return fmt.Sprintf("[ \"$(%s rquery -U '%%v' %s 2>/dev/null | sed 1q)\" = %s ]", pkgCmd(jail), modules.Quote(name), modules.Quote(c.Version))
	}
	return "false"
}

// The files whose modification time says when a catalogue was last
// refreshed. apt's own stamp is touched after every successful
// apt-get update by the APT::Periodic jobs and by the pkg module; without
// it the lists directory's time is used. FreeBSD's pkg keeps no such
// stamp, so the module keeps one beside the catalogues.
const (
	aptStamp     = "/var/lib/apt/periodic/update-success-stamp"
	aptLists     = "/var/lib/apt/lists"
	freebsdStamp = "/var/db/pkg/repos/.orch-update-stamp"
	freebsdRepos = "/var/db/pkg/repos"
)

type cacheFact struct{}

var _ modules.FactRechecker = cacheFact{}

// cacheProbe prints the host's time, whether the catalogue has any
// package lists, and the stamp's and the catalogue directory's mtimes.
func cacheProbe(manager string) string {
	if manager == "apt" {
		return "date +%s; set -- " + aptLists + "/*_Packages*; if [ -e \"$1\" ]; then echo lists; else echo empty; fi; " +
			"stat -c '%Y %n' " + aptStamp + " " + aptLists + " 2>/dev/null"
	}
	return "date +%s; set -- " + freebsdRepos + "/*/db; if [ -e \"$1\" ]; then echo lists; else echo empty; fi; " +
		"stat -f '%m %N' " + freebsdStamp + " " + freebsdRepos + " 2>/dev/null"
}

// inJail runs a snippet inside a FreeBSD jail ("" is the host).
func inJail(jail, snippet string) string {
	if jail == "" {
		return snippet
	}
	return "jexec " + modules.Quote(jail) + " /bin/sh -c " + modules.Quote(snippet)
}

func (cacheFact) Script(keys []string) string {
	var b strings.Builder
	b.WriteString(managerScript())
	b.WriteString("case $_orch_pm in\napt)\n")
	for _, k := range keys {
		if k == CacheKey("") {
			b.WriteString(jailHeader("") + "{ " + cacheProbe("apt") + "; }\n" + exitLine)
		}
	}
	b.WriteString(";;\npkg)\n")
	for _, k := range keys {
		j := strings.TrimPrefix(k, "@")
		b.WriteString(jailHeader(j) + inJail(j, cacheProbe("pkg")) + "\n" + exitLine)
	}
	b.WriteString(";;\nesac\n")
	return b.String()
}

func (cacheFact) Parse(out []byte, keys []string) (map[string]any, error) {
	p, err := parse(FactCache, out)
	if err != nil {
		return nil, err
	}
	res := make(map[string]any, len(keys))
	for _, k := range keys {
		res[k] = Cache{Manager: p.manager}
	}
	for _, s := range p.sections {
		k := CacheKey(s.jail)
		if len(s.lines) < 2 {
			return nil, fmt.Errorf("pkg_cache facts: unexpected output %q", strings.Join(s.lines, "\n"))
		}
		now, err := strconv.ParseInt(s.lines[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("pkg_cache facts: the host's time is %q", s.lines[0])
		}
		c := Cache{Manager: p.manager, Now: now, stat: strings.Join(s.lines[1:], "\n")}
		var stamp, dir int64
		for _, l := range s.lines[2:] {
			t, path, ok := strings.Cut(l, " ")
			n, err := strconv.ParseInt(t, 10, 64)
			if !ok || err != nil {
				return nil, fmt.Errorf("pkg_cache facts: unexpected stat line %q", l)
			}
			if path == aptStamp || path == freebsdStamp {
				stamp = n
			} else {
				dir = n
			}
		}
		if s.lines[1] == "lists" {
			c.Updated = dir
			if stamp != 0 {
				c.Updated = stamp
			}
		}
		res[k] = c
	}
	return res, nil
}

// Recheck holds while the stamp and the catalogue directory keep their
// times (and the catalogue its lists).
func (cacheFact) Recheck(key string, value any) string {
	c, ok := value.(Cache)
	if !ok || (c.Manager != "apt" && c.Manager != "pkg") {
		return "false"
	}
	jail := strings.TrimPrefix(key, "@")
	probe := cacheProbe(c.Manager)
	probe = probe[strings.Index(probe, ";")+2:] // all but the clock
	return fmt.Sprintf("[ \"$(%s)\" = %s ]", inJail(jail, probe), modules.Quote(c.stat))
}
