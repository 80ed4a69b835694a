package inventory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// errNotYAML marks a file that is not a YAML mapping, so that a file
// without an extension can be read as INI instead, as Ansible does.
var errNotYAML = errors.New("not a YAML inventory")

// parseYAML reads either YAML format: orch's when the top level has a hosts
// or groups key, Ansible's (top-level keys are groups) otherwise.
func parseYAML(filename string, src []byte) (*Inventory, format, error) {
	y := &yamlReader{file: filename, inv: New(), declared: map[string]string{}}
	root, err := y.document(src)
	if err != nil {
		return nil, 0, err
	}
	if root == nil {
		if strings.HasSuffix(strings.ToLower(filename), ".json") || filepath.Ext(filename) != "" {
			// Ansible warns that it cannot parse the source and goes on.
			inv := New()
			inv.warnf("%s: empty YAML inventory: it holds no hosts", filename)
			return inv, formatAnsibleYAML, nil
		}
		return nil, 0, fmt.Errorf("%s: empty YAML inventory: %w", filename, errNotYAML)
	}
	if root.Kind != yaml.MappingNode {
		return nil, 0, fmt.Errorf("%s: a YAML inventory must be a mapping, not %s: %w", y.at(root), kindName(root), errNotYAML)
	}
	for _, kv := range pairs(root) {
		switch kv[0].Value {
		case "hosts", "groups":
			inv, err := y.orch(root)
			return inv, formatOrchYAML, err
		case "plugin":
			return nil, 0, y.errorf(kv[0], "this is an Ansible inventory plugin configuration (plugin: %s), which orch cannot run; export its hosts with ansible-inventory -y --list", kv[1].Value)
		}
	}
	inv, err := y.ansible(root)
	return inv, formatAnsibleYAML, err
}

// document parses src and returns its top node, nil if it is empty (no
// content, only comments, or a lone null such as ~). Like Ansible, it reads
// a document that is valid JSON as JSON.
func (y *yamlReader) document(src []byte) (*yaml.Node, error) {
	y.json = json.Valid(src)
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, y.syntaxError(src, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := resolveAlias(doc.Content[0])
	if root.Kind == yaml.ScalarNode {
		if v, err := y.scalar(root); err == nil && v == nil {
			return nil, nil
		}
	}
	return root, nil
}

var yamlLineRE = regexp.MustCompile(`^line (\d+): `)

// syntaxError leads with the file and line, as every inventory error does.
// yaml.v3 says "yaml: line 3: …", but names no line for a problem on the
// first line or in the encoding; then the line is that of the first byte
// YAML refuses, or else the first.
func (y *yamlReader) syntaxError(src []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%s:%s: %s: %w", y.file, m[1], msg[len(m[0]):], errNotYAML)
	}
	line := 1
	for i, r := range string(src) {
		if r == utf8.RuneError || r < ' ' && r != '\t' && r != '\n' && r != '\r' || r == 0x7f {
			line += bytes.Count(src[:i], []byte("\n"))
			break
		}
	}
	return fmt.Errorf("%s:%d: %s: %w", y.file, line, msg, errNotYAML)
}

type yamlReader struct {
	file     string
	json     bool // the document is JSON
	files    bool // reading a group_vars/ or host_vars/ file
	inv      *Inventory
	declared map[string]string   // "host NAME" or "group NAME" -> where (orch format)
	reading  map[*yaml.Node]bool // the Ansible group bodies being read, for alias cycles
	decoding map[*yaml.Node]bool // the values being decoded, for alias cycles
	decoded  int                 // value nodes decoded, bounding alias bombs
}

func (y *yamlReader) at(n *yaml.Node) string { return fmt.Sprintf("%s:%d", y.file, n.Line) }

func (y *yamlReader) errorf(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("%s: %s", y.at(n), fmt.Sprintf(format, args...))
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// key returns a mapping key as the string Ansible makes of it.
func (y *yamlReader) key(n *yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", y.errorf(n, "a key must be a scalar, not %s", kindName(n))
	}
	v, err := y.scalar(n)
	return keyText(v), err
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

// pairs returns a mapping's key and value nodes, aliases resolved.
func pairs(n *yaml.Node) [][2]*yaml.Node {
	var out [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, [2]*yaml.Node{n.Content[i], resolveAlias(n.Content[i+1])})
	}
	return out
}

// value decodes a var's value with YAML 1.1 typing (see decode), refusing
// Ansible vault values, which orch cannot decrypt and must not pass on as if
// they were the secret.
func (y *yamlReader) value(n *yaml.Node) (any, error) {
	if v := findVault(n, map[*yaml.Node]bool{}); v != nil {
		return nil, y.errorf(v, "vault-encrypted values are not supported")
	}
	return y.decode(n)
}

// findVault returns a !vault node in n, visiting each node once, so that
// an alias cannot send it round a cycle or through an alias bomb.
func findVault(n *yaml.Node, seen map[*yaml.Node]bool) *yaml.Node {
	if seen[n] {
		return nil
	}
	seen[n] = true
	if n.Tag == "!vault" {
		return n
	}
	for _, c := range n.Content {
		if v := findVault(resolveAlias(c), seen); v != nil {
			return v
		}
	}
	return nil
}

func (y *yamlReader) vars(n *yaml.Node, into *varSet) error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return y.errorf(n, "vars must be a mapping, not %s", kindName(n))
	}
	seen := map[string]bool{}
	for _, kv := range y.mergedPairs(n) {
		k, err := y.key(kv[0])
		if err != nil {
			return err
		}
		v, err := y.value(kv[1])
		if err != nil {
			return err
		}
		if seen[k] && y.inv != nil {
			y.inv.warnf("%s: duplicate key %q: the last value is used", y.at(kv[0]), k)
		}
		seen[k] = true
		if y.files {
			into.set(k, v, y.at(kv[0])) // a vars file replaces, as combine_vars does
		} else {
			into.assign(k, v, y.at(kv[0]))
		}
	}
	return nil
}

// ansible reads Ansible's YAML inventory: every top-level key is a group,
// usually just all, and each group has optional hosts, vars and children.
func (y *yamlReader) ansible(root *yaml.Node) (*Inventory, error) {
	for _, kv := range pairs(root) {
		if err := y.ansibleGroup(kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	return y.inv, nil
}

func (y *yamlReader) ansibleGroup(key, n *yaml.Node) error {
	name := key.Value
	g := y.inv.group(name, y.at(key))
	if isNull(n) {
		return nil
	}
	if y.reading[n] {
		return y.errorf(key, "group %q contains itself through an alias", name)
	}
	if y.reading == nil {
		y.reading = map[*yaml.Node]bool{}
	}
	y.reading[n] = true
	defer delete(y.reading, n)
	if n.Kind != yaml.MappingNode {
		y.inv.warnf("%s: skipping %q: not a valid group definition", y.at(key), name)
		return nil
	}
	for _, kv := range pairs(n) {
		section, body := kv[0], kv[1]
		switch section.Value {
		case "vars", "children", "hosts":
		default:
			y.inv.warnf("%s: skipping unexpected key %q in group %q: only vars, children and hosts are valid", y.at(section), section.Value, name)
			continue
		}
		if isNull(body) {
			continue
		}
		// Ansible accepts a lone string where a mapping is expected.
		if body.Kind == yaml.ScalarNode {
			body = &yaml.Node{Kind: yaml.MappingNode, Line: body.Line, Content: []*yaml.Node{body, {Kind: yaml.ScalarNode, Tag: "!!null", Line: body.Line}}}
		}
		if body.Kind != yaml.MappingNode {
			return y.errorf(body, "invalid %q entry for group %q: want a mapping, not %s", section.Value, name, kindName(body))
		}
		switch section.Value {
		case "vars":
			if err := y.vars(body, &g.vars); err != nil {
				return err
			}
		case "children":
			for _, c := range pairs(body) {
				if err := y.ansibleGroup(c[0], c[1]); err != nil {
					return err
				}
				g.addChild(c[0].Value)
			}
		case "hosts":
			for _, h := range pairs(body) {
				if err := y.ansibleHost(g, h[0], h[1]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (y *yamlReader) ansibleHost(g *groupDecl, key, n *yaml.Node) error {
	names, port, err := expandHostPattern(key.Value)
	if err != nil {
		return y.errorf(key, "%v", err)
	}
	var vars varSet
	if !isNull(n) && n.Kind != yaml.MappingNode {
		return y.errorf(n, "host %q: vars must be a mapping, not %s", key.Value, kindName(n))
	}
	if err := y.vars(n, &vars); err != nil {
		return err
	}
	for _, name := range names {
		g.addHost(name)
		d := y.inv.host(name)
		if port != nil {
			d.vars.set("ansible_port", port, y.at(key))
		}
		d.vars.merge(vars)
	}
	return nil
}

// orch reads orch's own YAML format, which is strict: an unknown key is an
// error, since it is most likely a typo.
//
//	hosts:
//	  ns1: {address: 192.0.2.1, port: 22, user: root, key: ~/.ssh/id, connection: ssh,
//	        groups: [dns], vars: {zone: example.test}}
//	groups:
//	  all: {vars: {ntp: pool.ntp.org}}
//	  dns: {hosts: [ns1, ns2], children: [], vars: {}}
func (y *yamlReader) orch(root *yaml.Node) (*Inventory, error) {
	var childRefs [][2]*yaml.Node // (group key, child node), checked at the end
	for _, top := range pairs(root) {
		key, body := top[0], top[1]
		if key.Value != "hosts" && key.Value != "groups" {
			return nil, y.errorf(key, "unknown top-level key %q (want hosts or groups)", key.Value)
		}
		if isNull(body) {
			continue
		}
		if body.Kind != yaml.MappingNode {
			return nil, y.errorf(body, "%s must be a mapping of names, not %s", key.Value, kindName(body))
		}
		for _, kv := range pairs(body) {
			var err error
			if key.Value == "hosts" {
				err = y.orchHost(kv[0], kv[1])
			} else {
				var refs []*yaml.Node
				refs, err = y.orchGroup(kv[0], kv[1])
				for _, r := range refs {
					childRefs = append(childRefs, [2]*yaml.Node{kv[0], r})
				}
			}
			if err != nil {
				return nil, err
			}
		}
	}
	for _, ref := range childRefs {
		if _, ok := y.inv.groups[ref[1].Value]; !ok {
			return nil, y.errorf(ref[1], "group %q: child group %q is not declared", ref[0].Value, ref[1].Value)
		}
	}
	return y.inv, nil
}

func (y *yamlReader) orchHost(key, n *yaml.Node) error {
	name := key.Value
	if err := checkName("host", name); err != nil {
		return y.errorf(key, "%v", err)
	}
	if prev, dup := y.declared["host "+name]; dup {
		return y.errorf(key, "host %q is already declared at %s", name, prev)
	}
	y.declared["host "+name] = y.at(key)
	d := y.inv.host(name)
	d.fixedAt = y.at(key)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return y.errorf(n, "host %q must be a mapping, not %s", name, kindName(n))
	}
	for _, kv := range pairs(n) {
		field, v := kv[0], kv[1]
		switch field.Value {
		case "address", "user", "key", "connection":
			if v.Kind != yaml.ScalarNode {
				return y.errorf(v, "host %q: %s must be a string, not %s", name, field.Value, kindName(v))
			}
			switch field.Value {
			case "address":
				d.fixed.Address = v.Value
			case "user":
				d.fixed.User = v.Value
			case "key":
				d.fixed.Key = v.Value
			case "connection":
				c, err := normalizeConnection(v.Value)
				if err != nil {
					return y.errorf(v, "host %q: %v", name, err)
				}
				d.fixed.Connection = c
			}
		case "port":
			p, err := toPort(v.Value)
			if err != nil || v.Kind != yaml.ScalarNode {
				return y.errorf(v, "host %q: port %s is not a port number (1-65535)", name, strings.TrimSpace(v.Value))
			}
			d.fixed.Port = p
		case "groups":
			if v.Kind != yaml.SequenceNode {
				return y.errorf(v, "host %q: groups must be a list of names, not %s", name, kindName(v))
			}
			for _, g := range v.Content {
				if err := checkName("group", g.Value); err != nil || g.Kind != yaml.ScalarNode {
					return y.errorf(g, "host %q: bad group name %q", name, g.Value)
				}
				if g.Value == All || g.Value == Ungrouped {
					return y.errorf(g, "host %q: group %q is implicit and cannot be listed", name, g.Value)
				}
				y.inv.group(g.Value, y.at(g)).addHost(name)
			}
		case "vars":
			if err := y.vars(v, &d.vars); err != nil {
				return err
			}
		default:
			return y.errorf(field, "host %q: unknown key %q (want address, port, user, key, connection, groups or vars)", name, field.Value)
		}
	}
	return nil
}

// orchGroup reads one group and returns its child references, which may
// name groups declared further down.
func (y *yamlReader) orchGroup(key, n *yaml.Node) ([]*yaml.Node, error) {
	name := key.Value
	if err := checkName("group", name); err != nil {
		return nil, y.errorf(key, "%v", err)
	}
	if prev, dup := y.declared["group "+name]; dup {
		return nil, y.errorf(key, "group %q is already declared at %s", name, prev)
	}
	y.declared["group "+name] = y.at(key)
	g := y.inv.group(name, y.at(key))
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, y.errorf(n, "group %q must be a mapping, not %s", name, kindName(n))
	}
	implicit := name == All || name == Ungrouped
	var children []*yaml.Node
	for _, kv := range pairs(n) {
		field, v := kv[0], kv[1]
		switch field.Value {
		case "hosts", "children":
			if implicit {
				return nil, y.errorf(field, "group %q is implicit: only its vars can be set", name)
			}
			if isNull(v) {
				continue
			}
			if v.Kind != yaml.SequenceNode {
				return nil, y.errorf(v, "group %q: %s must be a list of names, not %s", name, field.Value, kindName(v))
			}
			for _, item := range v.Content {
				if err := checkName(strings.TrimSuffix(field.Value, "s"), item.Value); err != nil || item.Kind != yaml.ScalarNode {
					return nil, y.errorf(item, "group %q: bad name %q in %s", name, item.Value, field.Value)
				}
				if field.Value == "hosts" {
					y.inv.host(item.Value)
					g.addHost(item.Value)
				} else {
					g.addChild(item.Value)
					children = append(children, item)
				}
			}
		case "vars":
			if err := y.vars(v, &g.vars); err != nil {
				return nil, err
			}
		default:
			return nil, y.errorf(field, "group %q: unknown key %q (want hosts, children or vars)", name, field.Value)
		}
	}
	return children, nil
}
