package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestDeployTwice(t *testing.T) {
	root := filepath.Join(t.TempDir(), "site")
	changes := `plan site.star:
  changed  file site
  changed  file index.html
  localhost: changed, 2 of 2 tasks changed
  hosts=1 changed=1 failed=0 unreachable=0 tasks_changed=2
converge RELEASE:
  changed  file RELEASE
  localhost: changed, 1 of 1 tasks changed
  hosts=1 changed=1 failed=0 unreachable=0 tasks_changed=1
` // in check mode, what would change
	for _, c := range []struct {
		check bool
		want  string
	}{
		{true, changes},
		{false, changes},
		{false, `plan site.star:
  localhost: ok, 0 of 2 tasks changed
  hosts=1 changed=0 failed=0 unreachable=0 tasks_changed=0
converge RELEASE:
  localhost: ok, 0 of 1 tasks changed
  hosts=1 changed=0 failed=0 unreachable=0 tasks_changed=0
`},
	} {
		var out bytes.Buffer
		if err := deploy(context.Background(), &out, root, c.check); err != nil {
			t.Fatal(err)
		}
		if out.String() != c.want {
			t.Errorf("check=%v printed\n%s\nwant\n%s", c.check, out.String(), c.want)
		}
		if _, err := os.Stat(root); c.check && !os.IsNotExist(err) {
			t.Errorf("check mode made %s (%v)", root, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(root, "index.html"))
	if err != nil || string(b) != "<h1>localhost</h1>\n<p>release 1.4.2</p>\n" {
		t.Errorf("index.html = %q, %v", b, err)
	}
}
