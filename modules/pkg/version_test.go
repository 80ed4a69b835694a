package pkg

import "testing"

// TestFreeBSDVersionCmp: the cases of freebsd/pkg 1.21.3's
// tests/frontend/version.sh (pkg version -t), the rules spelled out in
// libpkg/pkg_version.c's comments, and revisions and epochs.
func TestFreeBSDVersionCmp(t *testing.T) {
	less := [][2]string{
		// tests/frontend/version.sh
		{"1", "2"}, {"2", "1,1"},
		{"1.pl1", "1.alpha1"}, {"1.alpha1", "1.beta1"}, {"1.beta1", "1.pre1"}, {"1.pre1", "1.rc1"}, {"1.rc1", "1"},
		{"1.pl1", "1.snap1"}, {"1.alpha1", "1.snap1"},
		// pkg_version.c's comments
		{"1.0.1:2003.09.16", "1.0:2003.09.16"}, {"10", "10a"}, {"10a", "10b"}, {"a", "0"}, {"10.a", "10"},
		{"10alpha", "10"}, {"pl11", "alpha3"}, {"alpha3", "0.1beta2"}, {"0.1beta2", "0.1"},
		{"2.*", "2pl1"}, {"2pl1", "2alpha3"}, {"2alpha3", "2.9f7"}, {"2.9f7", "3.*"},
		// revisions and epochs: epoch, then version, then revision
		{"1.16", "1.16_1"}, {"1.16_1", "1.16_2"}, {"1.16_9", "1.17"}, {"9.0", "1.0,1"},
		{"1.26.2_3,3", "1.26.3,3"}, {"nginx-1.26.2_3,3", "nginx-1.26.3,3"}, {"1.2.3", "1.2.10"},
	}
	for _, c := range less {
		if got := freebsdVersionCmp(c[0], c[1]); got != -1 {
			t.Errorf("cmp(%s, %s) = %d, want -1", c[0], c[1], got)
		}
		if got := freebsdVersionCmp(c[1], c[0]); got != 1 {
			t.Errorf("cmp(%s, %s) = %d, want 1", c[1], c[0], got)
		}
	}
	for _, c := range [][2]string{
		{"2", "2"}, {"1.0:2003.09.16", "1.0.2003.09.16"}, {"10..1", "10.1"}, {"10a1b2", "10a1.b2"},
		{"10", "10.0"}, {"10.0", "10.0.0"}, {"1.d2", "1.dev2"}, {"1.dev2", "1.Development2"}, {"0.1beta2", "0.1.b2"},
		{"1.0_0", "1.0"}, {"1.0,0", "1.0"},
	} {
		if got := freebsdVersionCmp(c[0], c[1]); got != 0 {
			t.Errorf("cmp(%s, %s) = %d, want 0", c[0], c[1], got)
		}
	}
}
