package inventory

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads an inventory file or directory. The format follows from the
// file name: .star is Starlark; .yml, .yaml and .json are YAML (orch's
// format when the top level has hosts or groups keys, Ansible's otherwise);
// anything else is an Ansible INI file, except that a file without an
// extension holding a YAML mapping is read as YAML, as Ansible does.
//
// For the Ansible formats, group_vars/ and host_vars/ beside the file are
// read too. A directory is read as Ansible reads one: every file in it, in
// name order, skipping hidden files, executables (dynamic inventory scripts,
// which orch cannot run) and Ansible's ignored extensions (.ini, .cfg,
// .retry, .orig, .bak, ~ and others), then its group_vars/ and host_vars/.
func Load(path string) (*Inventory, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	var inv *Inventory
	ansible := true
	if fi.IsDir() {
		inv, err = loadDir(path)
	} else {
		var f format
		inv, f, err = loadFile(path)
		ansible = f == formatINI || f == formatAnsibleYAML
	}
	if err != nil {
		return nil, err
	}
	if ansible {
		dir := path
		if !fi.IsDir() {
			dir = filepath.Dir(path)
		}
		if err := inv.loadVarsDirs(dir); err != nil {
			return nil, err
		}
	}
	if err := inv.resolveAll(); err != nil {
		return nil, err
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
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	inv := New()
	found := false
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || slices.ContainsFunc(ignoredExts, func(ext string) bool { return strings.HasSuffix(name, ext) }) {
			continue
		}
		path := filepath.Join(dir, name)
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("inventory: %w", err)
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
			return nil, err
		}
		inv.absorb(part)
		found = true
	}
	if !found {
		return nil, fmt.Errorf("inventory: %s: no inventory files in directory", dir)
	}
	return inv, nil
}

// loadVarsDirs merges group_vars/NAME and host_vars/NAME from dir into the
// groups and hosts of that name. They beat the vars set in the inventory file
// itself, as in Ansible.
func (inv *Inventory) loadVarsDirs(dir string) error {
	for _, name := range inv.groupSeq {
		vars, err := readVarsFiles(filepath.Join(dir, "group_vars"), name)
		if err != nil {
			return err
		}
		inv.groups[name].vars.merge(vars)
	}
	for _, name := range inv.order {
		vars, err := readVarsFiles(filepath.Join(dir, "host_vars"), name)
		if err != nil {
			return err
		}
		d := inv.hosts[name]
		d.vars.merge(vars)
	}
	return nil
}

var varsExts = []string{"", ".yml", ".yaml", ".json"}

// readVarsFiles reads dir/NAME, dir/NAME.yml, .yaml and .json, and every
// such file under a directory dir/NAME, in that order.
func readVarsFiles(dir, name string) (varSet, error) {
	var vars varSet
	for _, ext := range varsExts {
		path := filepath.Join(dir, name+ext)
		fi, err := os.Stat(path)
		if err != nil {
			continue
		}
		if !fi.IsDir() {
			if err := readVarsFile(path, &vars); err != nil {
				return vars, err
			}
			continue
		}
		if ext != "" {
			continue
		}
		err = filepath.WalkDir(path, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			base := e.Name()
			if p != path && strings.HasPrefix(base, ".") {
				if e.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if e.IsDir() || strings.HasSuffix(base, "~") || !slices.Contains(varsExts, filepath.Ext(base)) {
				return nil
			}
			return readVarsFile(p, &vars)
		})
		if err != nil {
			return vars, err
		}
	}
	return vars, nil
}

func readVarsFile(path string, into *varSet) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	if strings.HasPrefix(string(src), "$ANSIBLE_VAULT") {
		return fmt.Errorf("%s: vault-encrypted files are not supported", path)
	}
	y := &yamlReader{file: path}
	root, err := y.document(src)
	if err != nil || root == nil {
		return err
	}
	if root.Kind != yaml.MappingNode {
		return y.errorf(root, "a vars file must hold a mapping, not %s", kindName(root))
	}
	return y.vars(root, into)
}
