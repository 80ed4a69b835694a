package inventory

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/orch-dev/orch/testkit/require"
)

// The oracle test loads every inventory under testdata/corpus (real-world
// inventories from public projects, as found; SOURCE names each file's
// repository, path and commit) and testdata/ansible-cases (cases written
// for one behaviour each) with orch and with ansible-inventory --list, and
// compares the two host by host, group by group and var by var.
//
// Each case folder has a SOURCE or CASE file whose "inventory: PATH" lines
// are the -i arguments (relative to the folder; a value with a comma is a
// host list) and whose optional "playbook-dir: PATH" line is Ansible's
// --playbook-dir and orch's Options.PlaybookDir.
func TestAnsibleInventoryOracle(t *testing.T) {
	ai, err := exec.LookPath("ansible-inventory")
	if err != nil {
		require.Missing(t, "ansible-inventory not installed (apt-get install ansible-core)")
	}
	var dirs []string
	for _, root := range []string{"testdata/corpus", "testdata/ansible-cases"} {
		entries, err := os.ReadDir(root)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() {
				dirs = append(dirs, filepath.Join(root, e.Name()))
			}
		}
	}
	if len(dirs) < 20 {
		t.Fatalf("only %d oracle cases found", len(dirs))
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			c := readCase(t, dir)
			want := ansibleList(t, ai, c)
			got := orchList(t, c)
			diffs := compareLists(got, want)
			for _, d := range diffs {
				t.Error(d)
			}
			if len(diffs) > 0 {
				t.Logf("%d differences with ansible-inventory --list", len(diffs))
			}
		})
	}
}

type oracleCase struct {
	dir         string
	inventories []string // -i values: absolute paths, or host lists
	playbookDir string   // absolute, or ""
}

func readCase(t *testing.T, dir string) oracleCase {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := oracleCase{dir: abs}
	name := filepath.Join(dir, "SOURCE")
	if _, err := os.Stat(name); err != nil {
		name = filepath.Join(dir, "CASE")
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		switch {
		case !ok:
		case k == "inventory" && strings.Contains(v, ","):
			c.inventories = append(c.inventories, v)
		case k == "inventory":
			c.inventories = append(c.inventories, filepath.Join(abs, v))
		case k == "playbook-dir":
			c.playbookDir = filepath.Join(abs, v)
		}
	}
	if len(c.inventories) == 0 {
		t.Fatalf("%s names no inventory", name)
	}
	return c
}

// ansibleList runs ansible-inventory --list in an empty folder (so that no
// group_vars/ in the working directory apply) with no configuration file.
func ansibleList(t *testing.T, ai string, c oracleCase) map[string]any {
	t.Helper()
	args := []string{"--list"}
	for _, i := range c.inventories {
		args = append(args, "-i", i)
	}
	if c.playbookDir != "" {
		args = append(args, "--playbook-dir", c.playbookDir)
	}
	cmd := exec.Command(ai, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+cmd.Dir, "ANSIBLE_CONFIG="+filepath.Join(cmd.Dir, "none.cfg"),
		"ANSIBLE_NOCOLOR=1", "ANSIBLE_LOCAL_TEMP="+cmd.Dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ansible-inventory %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var v map[string]any
	if err := json.Unmarshal(pythonJSONConstants(out), &v); err != nil {
		t.Fatalf("ansible-inventory output: %v\n%s", err, out)
	}
	return unwrapUnsafe(v).(map[string]any)
}

// unwrapUnsafe replaces ansible-inventory's {"__ansible_unsafe": S} with S:
// a !unsafe value is a plain string to orch, which renders no templates
// (one of the deliberate differences listed in the README).
func unwrapUnsafe(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if s, ok := v["__ansible_unsafe"]; ok && len(v) == 1 {
			return s
		}
		for k, e := range v {
			v[k] = unwrapUnsafe(e)
		}
	case []any:
		for i, e := range v {
			v[i] = unwrapUnsafe(e)
		}
	}
	return v
}

func orchList(t *testing.T, c oracleCase) map[string]any {
	t.Helper()
	inv := New()
	for _, i := range c.inventories {
		one, err := LoadWith(i, Options{PlaybookDir: c.playbookDir})
		if err != nil {
			t.Fatalf("orch: %v", err)
		}
		if err := inv.Merge(one); err != nil {
			t.Fatalf("orch: %v", err)
		}
	}
	for _, w := range inv.Warnings() {
		t.Logf("orch warning: %s", w)
	}
	// Through JSON, so both sides have JSON's types.
	raw, err := json.Marshal(jsonSafe(inv.AnsibleList()))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// pythonJSONConstants quotes the Infinity, -Infinity and NaN that Python's
// json module writes for non-finite floats, so Go can read them.
func pythonJSONConstants(b []byte) []byte {
	var out bytes.Buffer
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			out.WriteByte(c)
			if c == '\\' && i+1 < len(b) {
				i++
				out.WriteByte(b[i])
			} else if c == '"' {
				inString = false
			}
			continue
		}
		matched := false
		for _, tok := range []string{"-Infinity", "Infinity", "NaN"} {
			if bytes.HasPrefix(b[i:], []byte(tok)) {
				out.WriteString(`{"$float":"` + tok + `"}`)
				i += len(tok) - 1
				matched = true
				break
			}
		}
		if !matched {
			if c == '"' {
				inString = true
			}
			out.WriteByte(c)
		}
	}
	return out.Bytes()
}

// jsonSafe writes non-finite floats as pythonJSONConstants reads them.
func jsonSafe(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = jsonSafe(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = jsonSafe(e)
		}
		return out
	case []string:
		return v
	case float64:
		switch s := PythonFloat(v); s {
		case "inf":
			return map[string]any{"$float": "Infinity"}
		case "-inf":
			return map[string]any{"$float": "-Infinity"}
		case "nan":
			return map[string]any{"$float": "NaN"}
		}
	}
	return v
}

// compareLists lists every difference between two ansible-inventory --list
// documents: groups, their hosts and children, hosts, and each var.
func compareLists(got, want map[string]any) []string {
	var diffs []string
	groupNames := func(m map[string]any) []string {
		var out []string
		for k := range m {
			if k != "_meta" {
				out = append(out, k)
			}
		}
		sort.Strings(out)
		return out
	}
	for _, g := range union(groupNames(got), groupNames(want)) {
		gg, gok := got[g].(map[string]any)
		wg, wok := want[g].(map[string]any)
		switch {
		case !gok:
			diffs = append(diffs, fmt.Sprintf("group %s: missing in orch (Ansible: %v)", g, want[g]))
			continue
		case !wok:
			diffs = append(diffs, fmt.Sprintf("group %s: not in Ansible (orch: %v)", g, got[g]))
			continue
		}
		for _, k := range []string{"hosts", "children"} {
			if !reflect.DeepEqual(gg[k], wg[k]) {
				diffs = append(diffs, fmt.Sprintf("group %s: %s = %v, Ansible %v", g, k, gg[k], wg[k]))
			}
		}
	}
	hostvars := func(m map[string]any) map[string]any {
		meta, _ := m["_meta"].(map[string]any)
		hv, _ := meta["hostvars"].(map[string]any)
		return hv
	}
	gh, wh := hostvars(got), hostvars(want)
	keys := func(m map[string]any) []string {
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	for _, h := range union(keys(gh), keys(wh)) {
		gv, _ := gh[h].(map[string]any)
		wv, _ := wh[h].(map[string]any)
		if gh[h] == nil || wh[h] == nil {
			diffs = append(diffs, fmt.Sprintf("host %s: vars %v, Ansible %v", h, gh[h], wh[h]))
			continue
		}
		for _, k := range union(keys(gv), keys(wv)) {
			g, gok := gv[k]
			w, wok := wv[k]
			if gok != wok || !reflect.DeepEqual(g, w) {
				diffs = append(diffs, fmt.Sprintf("host %s: var %s = %s, Ansible %s", h, k, show(g, gok), show(w, wok)))
			}
		}
	}
	return diffs
}

func show(v any, ok bool) string {
	if !ok {
		return "(unset)"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
