package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/digitalocean"
	"github.com/orch-dev/orch/modules/linode"
)

// masked replaces the value of a password var in every listing.
const masked = "********"

func (c *cli) inventory(ctx context.Context, args []string) error {
	var (
		invs  listFlag
		limit string
		asJSON,
		asAnsible,
		lab bool
		playbook string
	)
	fs := newFlagSet("inventory", c.stderr)
	fs.Var(&invs, "i", "inventory file or directory, or a host list 'a,b,' (repeatable)")
	fs.StringVar(&limit, "limit", "", "only hosts matching `PATTERN`")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	fs.BoolVar(&asAnsible, "ansible", false, "print what `ansible-inventory --list` prints, to diff the two")
	fs.StringVar(&playbook, "playbook-dir", ".", "folder whose group_vars/ and host_vars/ beat the inventory's, as a plan's folder does (ansible-inventory's --playbook-dir)")
	fs.BoolVar(&lab, "lab", false, "the local lab's inventory")
	pos, err := parse(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) > 0 {
		return &usageError{msg: "orch inventory takes no arguments", hint: "use --limit PATTERN to select hosts"}
	}
	if asJSON && asAnsible {
		return &usageError{msg: "--json and --ansible are two formats: choose one"}
	}
	var inv *inventory.Inventory
	if lab {
		var opts engine.Options
		if inv, err = c.labInventory(ctx, &opts); err != nil {
			return err
		}
	} else if inv, _, err = c.loadInventories(ctx, invs, playbook); err != nil {
		return &usageError{msg: err.Error()}
	}
	if limit != "" {
		if inv, err = inv.Limit(limit); err != nil {
			return &usageError{msg: "--limit: " + err.Error()}
		}
	}
	hosts := inv.Hosts()
	switch {
	case asAnsible:
		list := inv.AnsibleList()
		hostvars := list["_meta"].(map[string]any)["hostvars"].(map[string]any)
		for name, vars := range hostvars {
			hostvars[name] = maskSecrets(vars.(map[string]any))
		}
		var b strings.Builder
		writePythonJSON(&b, list, "")
		b.WriteByte('\n')
		_, err := io.WriteString(c.stdout, b.String())
		return err
	case asJSON:
		type jsonHost struct {
			Name       string         `json:"name"`
			Address    string         `json:"address"`
			Port       int            `json:"port,omitempty"`
			User       string         `json:"user,omitempty"`
			Connection string         `json:"connection,omitempty"`
			Unusable   string         `json:"unusable,omitempty"`
			Groups     []string       `json:"groups"`
			Vars       map[string]any `json:"vars,omitempty"`
		}
		out := []jsonHost{}
		for _, h := range hosts {
			out = append(out, jsonHost{h.Name, h.Address, h.Port, h.User, h.Connection, h.Unusable, nonNil(h.Groups), jsonVars(maskSecrets(h.Vars))})
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	for _, h := range hosts {
		target := h.Address
		if h.User != "" {
			target = h.User + "@" + target
		}
		if h.Port != 0 {
			target = fmt.Sprintf("%s:%d", target, h.Port)
		}
		if h.Connection != "" && h.Connection != "ssh" {
			target += " (" + h.Connection + ")"
		}
		fmt.Fprintf(c.stdout, "%s\t%s\tgroups=%s\n", h.Name, target, strings.Join(h.Groups, ","))
		if h.Unusable != "" {
			fmt.Fprintf(c.stdout, "    unusable: %s\n", h.Unusable)
		}
		vars := maskSecrets(h.Vars)
		keys := make([]string, 0, len(vars))
		for k := range vars {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v, _ := json.Marshal(jsonVars(map[string]any{k: vars[k]})[k])
			fmt.Fprintf(c.stdout, "    %s = %s\n", k, v)
		}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// maskSecrets returns vars with the values of password vars masked.
func maskSecrets(vars map[string]any) map[string]any {
	copied := false
	for _, k := range inventory.SecretVars {
		if _, ok := vars[k]; !ok {
			continue
		}
		if !copied {
			vars, copied = maps.Clone(vars), true
		}
		vars[k] = masked
	}
	return vars
}

// jsonVars makes vars encodable: JSON has no infinities or NaN, so those
// become the strings YAML spells them with (.inf, -.inf, .nan).
func jsonVars(v map[string]any) map[string]any {
	if v == nil {
		return nil
	}
	out := make(map[string]any, len(v))
	for k, e := range v {
		out[k] = jsonValue(e)
	}
	return out
}

func jsonValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return jsonVars(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = jsonValue(e)
		}
		return out
	case float64:
		switch {
		case math.IsInf(v, 1):
			return ".inf"
		case math.IsInf(v, -1):
			return "-.inf"
		case math.IsNaN(v):
			return ".nan"
		}
	}
	return v
}

// writePythonJSON writes v as Python's json.dumps(v, sort_keys=True,
// indent=4, ensure_ascii=False) does, which is how ansible-inventory
// prints: floats keep their .0, non-finite floats are Infinity and NaN.
func writePythonJSON(b *strings.Builder, v any, indent string) {
	inner := indent + "    "
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case int:
		b.WriteString(strconv.Itoa(v))
	case float64:
		b.WriteString(pythonFloat(v))
	case string:
		writePythonString(b, v)
	case []string:
		list := make([]any, len(v))
		for i, s := range v {
			list[i] = s
		}
		writePythonJSON(b, list, indent)
	case []any:
		if len(v) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteString("[\n")
		for i, e := range v {
			b.WriteString(inner)
			writePythonJSON(b, e, inner)
			if i < len(v)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "]")
	case map[string]any:
		if len(v) == 0 {
			b.WriteString("{}")
			return
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("{\n")
		for i, k := range keys {
			b.WriteString(inner)
			writePythonString(b, k)
			b.WriteString(": ")
			writePythonJSON(b, v[k], inner)
			if i < len(keys)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "}")
	default:
		writePythonString(b, fmt.Sprint(v))
	}
}

func pythonFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case math.IsNaN(f):
		return "NaN"
	}
	return inventory.PythonFloat(f)
}

// writePythonString quotes s as Python's json module does with
// ensure_ascii=False: only ", \ and control characters are escaped.
func writePythonString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 || r == utf8.RuneError {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// defaultInventories are looked for in the working directory when no -i is
// given.
var defaultInventories = []string{"inventory.star", "inventory.yaml", "inventory.yml", "inventory.ini", "hosts"}

// dynamicInventories are the -i sources that list cloud machines by tag
// (`-i linode:web`, `-i digitalocean:` for all), read from the provider's
// API with the usual token and URL variables (cloudEndpoints).
var dynamicInventories = map[string]func(context.Context, modules.Endpoint, string) (*inventory.Inventory, error){
	linode.Provider: func(ctx context.Context, ep modules.Endpoint, tag string) (*inventory.Inventory, error) {
		return linode.Inventory(ctx, linode.Config{Token: ep.Token, URL: ep.URL}, tag)
	},
	digitalocean.Provider: func(ctx context.Context, ep modules.Endpoint, tag string) (*inventory.Inventory, error) {
		return digitalocean.Inventory(ctx, digitalocean.Config{Token: ep.Token, URL: ep.URL}, tag)
	},
}

// playbookDir is the folder of a plan file, which plays Ansible's playbook
// directory; a shipped plan has none.
func playbookDir(planPath string) string {
	if fi, err := os.Stat(planPath); err != nil || fi.IsDir() {
		return ""
	}
	return filepath.Dir(planPath)
}

// loadInventories loads and merges every -i source, with the group_vars/
// and host_vars/ of playbookDir on top, and shows the inventory's warnings
// once. With no source, it uses a default file in the working directory,
// or else just localhost.
func (c *cli) loadInventories(ctx context.Context, paths []string, playbookDir string) (*inventory.Inventory, []string, error) {
	if len(paths) == 0 {
		for _, p := range defaultInventories {
			if _, err := os.Stat(p); err == nil {
				paths = []string{p}
				break
			}
		}
	}
	if len(paths) == 0 {
		inv := inventory.New()
		err := inv.Add(&inventory.Host{Name: "localhost", Address: "localhost", Connection: "local", Groups: []string{"local"}})
		return inv, nil, err
	}
	inv := inventory.New()
	var abs []string
	for _, p := range paths {
		var one *inventory.Inventory
		var err error
		if provider, tag, ok := strings.Cut(p, ":"); ok && dynamicInventories[provider] != nil && !fileExists(p) {
			one, err = dynamicInventories[provider](ctx, cloudEndpoints(os.Getenv)[provider], tag)
			if err != nil {
				return nil, nil, fmt.Errorf("inventory %s: %w", p, err)
			}
			if err := inv.Merge(one); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", p, err)
			}
			abs = append(abs, p)
			continue
		}
		one, err = inventory.LoadWith(p, inventory.Options{PlaybookDir: playbookDir})
		if err != nil {
			return nil, nil, err
		}
		if err := inv.Merge(one); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p, err)
		}
		if fileExists(p) { // not a host list
			if a, err := filepath.Abs(p); err == nil {
				p = a
			}
		}
		abs = append(abs, p)
	}
	for _, w := range inv.Warnings() {
		c.log.Warn("inventory: " + w)
	}
	return inv, abs, nil
}
