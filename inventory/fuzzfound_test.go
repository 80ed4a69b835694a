package inventory

import (
	"strings"
	"testing"
)

// What the fuzz targets found, as plain cases with the errors users see.
func TestFuzzFindings(t *testing.T) {
	for _, c := range []struct{ name, file, src, want string }{
		{"INI host name with a comma", "h.ini", "[web]\nweb1\na,b\n", `h.ini:3: host name "a,b" contains a space or comma`},
		{"INI group name with a comma", "h.ini", "[web,db]\nweb1\n", `h.ini:1: group name "web,db" contains a space or comma`},
		{"YAML host name with a space", "h.yml", "web:\n  hosts: web 1\n", `h.yml:2: host name "web 1" contains a space or comma`},
		{"YAML group name with a space", "h.yml", "my web:\n  hosts:\n    web1:\n", `h.yml:1: group name "my web" contains a space or comma`},
		{"INI not UTF-8", "h.ini", "[web]\nweb1 note=caf\xe9\n", `h.ini:2: not valid UTF-8`},
		{"host name with a control character", "h.ini", "web\x7f1\n", `h.ini:1: host name "web\x7f1" contains a control character`},
		{"YAML syntax error on the first line", "h.yml", "\"web", `h.yml:1: found unexpected end of stream`},
		{"YAML bad byte on a later line", "h.yml", "all:\n  hosts:\n    web\x01:\n", `h.yml:3: control characters are not allowed`},
		{"YAML vars that contain themselves", "h.yml", "all:\n  vars: &v\n    x:\n      <<: *v\n", `h.yml:`},
		{"YAML group that contains itself", "h.yml", "all: &top\n  children:\n    web: *top\n", `h.yml:3: group "web" contains itself through an alias`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.file, []byte(c.src))
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("err = %v\nwant it to start with %q", err, c.want)
			}
		})
	}
}
