package inventory

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Options tune Load.
type Options struct {
	// PlaybookDir is the folder whose group_vars/ and host_vars/ beat those
	// beside the inventory, as Ansible's playbook directory does. orch run
	// passes the plan's folder.
	PlaybookDir string
}

// Load reads an inventory file or directory, or a host list. The format
// follows from the file name: .star is Starlark; .yml, .yaml and .json are
// YAML (orch's format when the top level has hosts or groups keys, Ansible's
// otherwise); anything else is an Ansible INI file, except that a file
// without an extension holding a YAML mapping is read as YAML, as Ansible
// does. A path that does not exist and holds a comma is a host list, as
// in ansible -i 'web1,web2:2222,': its hosts are ungrouped.
//
// For the Ansible formats, group_vars/ and host_vars/ beside the file apply
// too. A directory is read as Ansible reads one: every file in it, in name
// order, skipping hidden files, executables (dynamic inventory scripts,
// which orch cannot run) and Ansible's ignored extensions (.ini, .cfg,
// .retry, .orig, .bak, ~ and others), then its group_vars/ and host_vars/.
func Load(path string) (*Inventory, error) { return LoadWith(path, Options{}) }

// LoadWith is Load with options. Like Load, it fails on a source that
// cannot be read or parsed, naming the file and line; what orch merely
// ignores is in Warnings.
func LoadWith(path string, o Options) (*Inventory, error) {
	inv, err := load(path)
	if err != nil {
		return nil, err
	}
	if o.PlaybookDir != "" {
		inv.playbookDir = filepath.Clean(o.PlaybookDir)
	}
	if err := inv.resolveAll(); err != nil {
		return nil, err
	}
	return inv, nil
}

func load(path string) (*Inventory, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) && strings.Contains(path, ",") {
		return parseHostList(path)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	if fi.IsDir() {
		inv, err := loadDir(path)
		if err != nil {
			return nil, err
		}
		inv.varsDirs = []string{filepath.Clean(path)}
		return inv, nil
	}
	inv, f, err := loadFile(path)
	if err != nil {
		return nil, err
	}
	if f == formatINI || f == formatAnsibleYAML {
		inv.varsDirs = []string{filepath.Dir(path)}
	}
	return inv, nil
}

// parseHostList reads a comma-separated host list as Ansible's host_list
// plugin does: host or host:port entries, blanks ignored.
func parseHostList(list string) (*Inventory, error) {
	inv := New()
	for _, entry := range strings.Split(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, port, err := splitHostPort(entry)
		if err != nil {
			return nil, fmt.Errorf("inventory: host list %q: %v", list, err)
		}
		if err := checkName("host", name); err != nil {
			return nil, fmt.Errorf("inventory: host list %q: %v", list, err)
		}
		if _, ok := inv.hosts[name]; ok {
			continue
		}
		inv.groups[Ungrouped].addHost(name)
		d := inv.host(name)
		if port != nil {
			d.vars.set("ansible_port", port, "")
		}
	}
	return inv, nil
}

// Parse reads an inventory from memory; filename picks the format as in
// Load and names the source in errors. It reads no group_vars/ or host_vars/.
func Parse(filename string, src []byte) (*Inventory, error) {
	inv, _, err := parse(filename, src)
	if err != nil {
		return nil, err
	}
	if err := inv.resolveAll(); err != nil {
		return nil, err
	}
	return inv, nil
}

type format int

const (
	formatINI format = iota
	formatAnsibleYAML
	formatOrchYAML
	formatStarlark
)

func parse(filename string, src []byte) (*Inventory, format, error) {
	switch strings.ToLower(filepath.Ext(filename)) {
	case ".star":
		inv, err := parseStarlark(filename, src)
		return inv, formatStarlark, err
	case ".yml", ".yaml", ".json":
		return parseYAML(filename, src)
	case "":
		inv, f, err := parseYAML(filename, src)
		if !errors.Is(err, errNotYAML) {
			return inv, f, err
		}
	}
	inv, err := parseINI(filename, src)
	return inv, formatINI, err
}

func loadFile(path string) (*Inventory, format, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("inventory: %w", err)
	}
	return parse(path, src)
}

// ignoredExts are Ansible's INVENTORY_IGNORE_EXTS: files in an inventory
// directory that are not inventories.
var ignoredExts = []string{".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".ini", ".cfg", ".retry"}

func loadDir(dir string) (*Inventory, error) {
	inv := New()
	found, err := loadDirInto(inv, dir)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("inventory: %s: no inventory files in directory", dir)
	}
	return inv, nil
}

// loadDirInto reads the inventory files of dir and of its subfolders, as
// Ansible's inventory manager does (skipping group_vars, host_vars and
// vars_plugins), and reports whether it found any.
func loadDirInto(inv *Inventory, dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("inventory: %w", err)
	}
	found := false
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || slices.ContainsFunc(ignoredExts, func(ext string) bool { return strings.HasSuffix(name, ext) }) {
			continue
		}
		path := filepath.Join(dir, name)
		info, err := os.Stat(path)
		if err != nil {
			return false, fmt.Errorf("inventory: %w", err)
		}
		if info.IsDir() {
			if name == "group_vars" || name == "host_vars" || name == "vars_plugins" {
				continue
			}
			sub, err := loadDirInto(inv, path)
			if err != nil {
				return false, err
			}
			found = found || sub
			continue
		}
		if !info.Mode().IsRegular() {
			continue
		}
		if info.Mode()&0o111 != 0 && !slices.Contains([]string{".star", ".yml", ".yaml", ".json"}, filepath.Ext(name)) {
			inv.warnf("%s: skipped: dynamic inventory scripts are not supported", path)
			continue
		}
		part, _, err := loadFile(path)
		if err != nil {
			return false, err
		}
		inv.absorb(part)
		found = true
	}
	return found, nil
}

// adjacentVars returns the vars that dir/kind (group_vars or host_vars)
// holds for name, read once. As in Ansible, only the first of NAME,
// NAME.yml, NAME.yaml and NAME.json that exists is read; when it is a
// folder, every file in it is, in name order, recursively.
func (inv *Inventory) adjacentVars(dir, kind, name string) (varSet, error) {
	key := dir + "\x00" + kind + "\x00" + name
	if e, ok := inv.adjacent[key]; ok {
		return e.vars, e.err
	}
	var vars varSet
	err := inv.readAdjacent(filepath.Join(dir, kind), name, &vars)
	if inv.adjacent == nil {
		inv.adjacent = map[string]adjacentVars{}
	}
	inv.adjacent[key] = adjacentVars{vars, err}
	return vars, err
}

var varsExts = []string{"", ".yml", ".yaml", ".json"}

func (inv *Inventory) readAdjacent(dir, name string, into *varSet) error {
	// Ansible skips names that are absolute paths (chroot-style hosts).
	if strings.HasPrefix(name, "/") {
		return nil
	}
	for _, ext := range varsExts {
		path := filepath.Join(dir, name+ext)
		fi, err := os.Stat(path)
		if err != nil {
			continue
		}
		if !fi.IsDir() {
			return inv.readVarsFile(path, into)
		}
		return inv.readVarsDir(path, into)
	}
	return nil
}

// readVarsDir reads a group_vars/NAME/ folder as Ansible's
// _get_dir_vars_files does: sorted, hidden and ~ files skipped, files with
// no extension or a vars extension read, folders without an extension
// walked.
func (inv *Inventory) readVarsDir(dir string, into *varSet) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
			continue
		}
		path := filepath.Join(dir, name)
		ext := filepath.Ext(name)
		fi, err := os.Stat(path)
		if err != nil {
			continue
		}
		switch {
		case fi.IsDir() && ext == "":
			err = inv.readVarsDir(path, into)
		case fi.Mode().IsRegular() && slices.Contains(varsExts, ext):
			err = inv.readVarsFile(path, into)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readVarsFile merges one vars file. A file with no vars (empty, only
// comments or ---, or a lone ~) adds nothing, as in Ansible.
func (inv *Inventory) readVarsFile(path string, into *varSet) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	if strings.HasPrefix(string(src), "$ANSIBLE_VAULT") {
		return fmt.Errorf("%s: vault-encrypted files are not supported", path)
	}
	y := &yamlReader{file: path, inv: inv, files: true}
	root, err := y.document(src)
	if err != nil || root == nil {
		return err
	}
	if root.Kind != yaml.MappingNode {
		return y.errorf(root, "a vars file must hold a mapping, not %s", kindName(root))
	}
	return y.vars(root, into)
}
