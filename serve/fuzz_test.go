package serve

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// FuzzVerify checks the signature check against its definition. For any
// secret, body and header: a body's own signature verifies; one flipped bit
// in the body or in the digest does not; and any header verifies exactly
// when it is "sha256=" and the body's digest in hex (of either case).
// Seeds: testdata/fuzz/FuzzVerify/ and GitHub's published example.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("It's a Secret to Everybody"), []byte("Hello, World!"),
		"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", uint(0))
	f.Fuzz(func(t *testing.T, secret, body []byte, header string, bit uint) {
		sig := Sign(secret, body)
		if !Verify(secret, body, sig) {
			t.Fatalf("the body's own signature %s does not verify", sig)
		}
		if len(body) > 0 {
			flipped := append([]byte(nil), body...)
			flipped[bit/8%uint(len(flipped))] ^= 1 << (bit % 8)
			if Verify(secret, flipped, sig) {
				t.Fatalf("a body with one bit flipped verifies")
			}
		}
		digest, _ := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
		digest[bit/8%uint(len(digest))] ^= 1 << (bit % 8)
		if Verify(secret, body, "sha256="+hex.EncodeToString(digest)) {
			t.Fatalf("a digest with one bit flipped verifies")
		}

		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		hexPart, hasPrefix := strings.CutPrefix(header, "sha256=")
		matches := hasPrefix && len(header) == len(want) && strings.ToLower(hexPart) == want[len("sha256="):]
		if got := Verify(secret, body, header); got != matches {
			t.Fatalf("Verify(%q) = %v, want %v (signature %s)", header, got, matches, want)
		}
	})
}
