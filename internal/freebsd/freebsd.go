// Package freebsd parses the output of FreeBSD's jls, bectl, sysrc,
// service, pkg and sysctl into facts, for the jail, bectl, pkg and service
// modules. Each parser is tested on the recorded FreeBSD outputs under
// testdata/freebsd (their provenance is in each file), and the lab's
// FreeBSD stand-in (lab/standin) is checked with the same parsers.
package freebsd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Jail is one running jail as jls reports it. Fields jls did not print
// are zero.
type Jail struct {
	JID      int      `json:"jid"`
	Name     string   `json:"name,omitempty"`
	Hostname string   `json:"hostname,omitempty"`
	Path     string   `json:"path,omitempty"`
	State    string   `json:"state,omitempty"` // ACTIVE or DYING (jls -v)
	IPv4     []string `json:"ipv4,omitempty"`
	IPv6     []string `json:"ipv6,omitempty"`
}

// JLSVersion is the libxo version jls stamps on its JSON.
const JLSVersion = "2"

// ParseJLS reads the output of `jls --libxo json`, in its default form,
// with -v, or with named parameters (name, jid, path, host.hostname,
// ip4.addr, ip6.addr).
func ParseJLS(out []byte) ([]Jail, error) {
	var doc struct {
		Version string `json:"__version"`
		Info    *struct {
			Jails []map[string]json.RawMessage `json:"jail"`
		} `json:"jail-information"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("jls: %v", err)
	}
	if doc.Info == nil {
		return nil, errors.New(`jls: no "jail-information" in the output`)
	}
	if doc.Version != JLSVersion {
		return nil, fmt.Errorf("jls: libxo version %q, want %q", doc.Version, JLSVersion)
	}
	jails := []Jail{}
	for i, raw := range doc.Info.Jails {
		var j Jail
		for key, val := range raw {
			var err error
			switch key {
			case "jid":
				j.JID, err = jsonInt(val)
			case "name":
				err = json.Unmarshal(val, &j.Name)
			case "hostname", "host.hostname":
				err = json.Unmarshal(val, &j.Hostname)
			case "path":
				err = json.Unmarshal(val, &j.Path)
			case "state":
				err = json.Unmarshal(val, &j.State)
			case "ipv4": // default form: the first address, "" for none
				var ip string
				if err = json.Unmarshal(val, &ip); err == nil && ip != "" {
					j.IPv4 = []string{ip}
				}
			case "ipv4_addrs", "ip4.addr":
				err = json.Unmarshal(val, &j.IPv4)
			case "ipv6_addrs", "ip6.addr":
				err = json.Unmarshal(val, &j.IPv6)
			}
			if err != nil {
				return nil, fmt.Errorf("jls: jail %d: %s: %v", i, key, err)
			}
		}
		jails = append(jails, j)
	}
	return jails, nil
}

// jsonInt reads a number that jls prints as a number (default and -v) or
// as a string (named parameters).
func jsonInt(raw json.RawMessage) (int, error) {
	var n int
	if err := json.Unmarshal(raw, &n); err == nil {
		return n, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// BootEnv is one boot environment as `bectl list -H` reports it.
type BootEnv struct {
	Name       string `json:"name"`
	Active     bool   `json:"active"`               // N: the BE booted now
	NextBoot   bool   `json:"next_boot"`            // R: the BE the next boots use
	Temporary  bool   `json:"temporary"`            // T: activated for the next boot only
	Mountpoint string `json:"mountpoint,omitempty"` // where it is mounted, "" when not
	Space      string `json:"space"`                // humanised, as bectl prints it
	Created    string `json:"created"`              // "YYYY-MM-DD HH:MM", local time
}

// Flags are the BE's letters of bectl's Active column, "NRT" or fewer; ""
// when it has none (bectl prints "-").
func (b BootEnv) Flags() string {
	f := ""
	if b.Active {
		f += "N"
	}
	if b.NextBoot {
		f += "R"
	}
	if b.Temporary {
		f += "T"
	}
	return f
}

var spaceRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?[KMGTPE]?$`)

// ParseBectlList reads `bectl list -H`: five tab-separated columns.
func ParseBectlList(out []byte) ([]BootEnv, error) {
	bes := []BootEnv{}
	for i, line := range lines(out) {
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			return nil, fmt.Errorf("bectl list line %d: %d columns, want 5: %q", i+1, len(f), line)
		}
		be := BootEnv{Name: f[0], Space: f[3], Created: f[4]}
		if f[1] != "-" {
			for _, c := range f[1] {
				switch c {
				case 'N':
					be.Active = true
				case 'R':
					be.NextBoot = true
				case 'T':
					be.Temporary = true
				default:
					return nil, fmt.Errorf("bectl list line %d: unknown flag %q in %q", i+1, c, f[1])
				}
			}
		}
		if f[2] != "-" {
			be.Mountpoint = f[2]
		}
		if !spaceRE.MatchString(be.Space) {
			return nil, fmt.Errorf("bectl list line %d: bad space %q", i+1, be.Space)
		}
		if _, err := time.Parse("2006-01-02 15:04", be.Created); err != nil {
			return nil, fmt.Errorf("bectl list line %d: bad creation time %q", i+1, be.Created)
		}
		bes = append(bes, be)
	}
	return bes, nil
}

// SysrcChange is one line sysrc prints when it sets a variable.
type SysrcChange struct {
	Name string `json:"name"`
	Old  string `json:"old"`
	New  string `json:"new"`
}

// ParseSysrc reads the "name: value" lines of `sysrc NAME...`.
func ParseSysrc(out []byte) (map[string]string, error) {
	vars := map[string]string{}
	for i, line := range lines(out) {
		name, value, ok := strings.Cut(line, ": ")
		if !ok {
			return nil, fmt.Errorf("sysrc line %d: %q is not \"name: value\"", i+1, line)
		}
		vars[name] = value
	}
	return vars, nil
}

// ParseSysrcChanges reads the "name: old -> new" lines of `sysrc NAME=VALUE...`.
func ParseSysrcChanges(out []byte) ([]SysrcChange, error) {
	var changes []SysrcChange
	for i, line := range lines(out) {
		// An empty old or new value leaves the separators in place:
		// "name:  -> YES".
		name, rest, ok := strings.Cut(line, ": ")
		old, new, ok2 := strings.Cut(rest, " -> ")
		if !ok || !ok2 {
			return nil, fmt.Errorf("sysrc line %d: %q is not \"name: old -> new\"", i+1, line)
		}
		changes = append(changes, SysrcChange{Name: name, Old: old, New: new})
	}
	return changes, nil
}

// Package is one installed package as `pkg info` lists it.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Comment string `json:"comment"`
}

// ParsePkgInfo reads `pkg info` without arguments: "name-version" padded
// to column 31, then the comment. The version is what follows the last
// dash of the tag (package names may contain dashes, versions may not).
func ParsePkgInfo(out []byte) ([]Package, error) {
	pkgs := []Package{}
	for i, line := range lines(out) {
		tag, comment, _ := strings.Cut(line, " ")
		dash := strings.LastIndexByte(tag, '-')
		if dash <= 0 || dash == len(tag)-1 {
			return nil, fmt.Errorf("pkg info line %d: %q has no name-version", i+1, line)
		}
		pkgs = append(pkgs, Package{Name: tag[:dash], Version: tag[dash+1:], Comment: strings.TrimLeft(comment, " ")})
	}
	return pkgs, nil
}

// ServiceStatus is what `service NAME status` says.
type ServiceStatus struct {
	Running bool `json:"running"`
	PID     int  `json:"pid,omitempty"`
}

var runningRE = regexp.MustCompile(`^(\S+) is running as pid ([0-9]+)\.$`)

// ParseServiceStatus reads `service NAME status` and its exit status: rc.subr
// prints "NAME is running as pid N." (exit 0) or "NAME is not running."
// (exit 1).
func ParseServiceStatus(out []byte, exit int) (ServiceStatus, error) {
	line := strings.TrimSpace(string(out))
	if m := runningRE.FindStringSubmatch(line); m != nil && exit == 0 {
		pid, _ := strconv.Atoi(m[2])
		return ServiceStatus{Running: true, PID: pid}, nil
	}
	if strings.HasSuffix(line, " is not running.") && exit == 1 {
		return ServiceStatus{}, nil
	}
	return ServiceStatus{}, fmt.Errorf("service status: %q (exit %d)", line, exit)
}

var bootIDRE = regexp.MustCompile(`^(?:kern\.boot_id: )?Format: Length:16 Dump:0x([0-9a-f]{32})$`)

// ParseBootID reads `sysctl -x kern.boot_id` (with or without -n) and
// returns the boot ID in hex.
func ParseBootID(out []byte) (string, error) {
	line := strings.TrimSpace(string(out))
	m := bootIDRE.FindStringSubmatch(line)
	if m == nil {
		return "", fmt.Errorf("sysctl kern.boot_id: %q", line)
	}
	return m[1], nil
}

var boottimeRE = regexp.MustCompile(`^(?:kern\.boottime: )?\{ sec = ([0-9]+), usec = ([0-9]+) \} `)

// ParseBoottime reads `sysctl kern.boottime` (with or without -n).
func ParseBoottime(out []byte) (time.Time, error) {
	m := boottimeRE.FindSubmatch(bytes.TrimSpace(out))
	if m == nil {
		return time.Time{}, fmt.Errorf("sysctl kern.boottime: %q", bytes.TrimSpace(out))
	}
	sec, _ := strconv.ParseInt(string(m[1]), 10, 64)
	usec, _ := strconv.ParseInt(string(m[2]), 10, 64)
	return time.Unix(sec, usec*1000), nil
}

func lines(out []byte) []string {
	s := strings.TrimRight(string(out), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
