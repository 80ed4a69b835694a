package sshconn

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

// FuzzSSHConfig reads any text as an ssh config and evaluates it for a
// host, sandboxed (Match exec runs nothing, Include reads nothing). It must
// not panic or hang; errors name the file and line; a config is evaluated
// the same way twice; the result has a port ssh accepts, a lower-case
// HostName, and a user; and each line's words survive being quoted and
// split again (splitArgs is argv_split). Seeds: testdata/fuzz/FuzzSSHConfig/
// and the configs below.
func FuzzSSHConfig(f *testing.F) {
	f.Add("Host web*\n  HostName %h.example.test\n  User deploy\n  Port 2222\n", "web1")
	f.Add("Match host db* !user root\n\tProxyJump bastion\nHost *\n\tIdentityFile ~/.ssh/id_ed25519\n\tIdentityFile \"/keys/with space\"\n", "db1")
	f.Add("Host a\nHostName=b\nMatch final host b\nUser x\nMatch canonical all\nPort 7\n", "a")
	f.Add("Include conf.d/*\nMatch exec \"test -e /etc\"\nUser y\nHost *\nProxyCommand ssh -W %h:%p jump # comment\n", "x")
	f.Add("Host \"quoted host\" 'single' \\\"esc\nUserKnownHostsFile ~/.ssh/a %d/b ${HOME}/c\nHashKnownHosts yes\nIdentitiesOnly no\n", "quoted host")
	f.Fuzz(func(t *testing.T, config, host string) {
		if len(config) > 16<<10 || len(host) > 64 {
			return // long host names only make the glob matching slow
		}
		cf, err := parseCfg(strings.NewReader(config), "fuzz.conf", true)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.conf") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, l := range cf.lines {
			if !strings.HasPrefix(l.at, "fuzz.conf:") {
				t.Fatalf("line at %q", l.at)
			}
			if again, err := splitArgs(quoteArgs(l.args)); err != nil || !reflect.DeepEqual(again, nonNil(l.args)) {
				t.Fatalf("%q split as %q, quoted and split again as %q (%v)", l.rest, l.args, again, err)
			}
		}
		env := cfgEnv{home: "/home/fuzz", localUser: "fuzz", uid: "1000", hostname: "ctl.example.test", warn: func(string) {}, sandbox: true}
		s1, err1 := resolveSSHConfig(context.Background(), []*cfgFile{cf}, host, sshOverrides{}, env)
		s2, err2 := resolveSSHConfig(context.Background(), []*cfgFile{cf}, host, sshOverrides{}, env)
		if (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) {
			t.Fatalf("two evaluations disagree: %v / %v", err1, err2)
		}
		if err1 != nil {
			if !strings.Contains(err1.Error(), "fuzz.conf") && !strings.Contains(err1.Error(), "Include") {
				t.Fatalf("error names no line: %v", err1)
			}
			return
		}
		if !reflect.DeepEqual(s1, s2) {
			t.Fatalf("two evaluations disagree:\n%+v\n%+v", s1, s2)
		}
		if s1.Port < 1 || s1.Port > 65535 || s1.User == "" || s1.HostName != strings.ToLower(s1.HostName) {
			t.Fatalf("settings: %+v", s1)
		}
	})
}

// quoteArgs writes words so that splitArgs reads them back.
func quoteArgs(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('"')
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a))
		b.WriteByte('"')
	}
	return b.String()
}

func nonNil(s []string) []string {
	if s == nil {
		return nil
	}
	return s
}

// FuzzMatchPattern checks the linear glob against the recursive definition
// OpenSSH's match_pattern uses, on inputs small enough for the latter.
func FuzzMatchPattern(f *testing.F) {
	for _, c := range [][2]string{{"web1", "web*"}, {"db", "d?"}, {"aaab", "*a*b"}, {"", "*"}, {"x", ""}, {"abc", "a*c*"}, {"ab", "*?*?*"}} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, s, p string) {
		if len(s) > 24 || len(p) > 12 {
			return
		}
		if got, want := matchPattern(s, p), recursiveMatch(s, p); got != want {
			t.Fatalf("matchPattern(%q, %q) = %v, want %v", s, p, got, want)
		}
	})
}

func recursiveMatch(s, p string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			if p == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if recursiveMatch(s[i:], p) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
			s, p = s[1:], p[1:]
		default:
			if s == "" || s[0] != p[0] {
				return false
			}
			s, p = s[1:], p[1:]
		}
	}
	return s == ""
}
