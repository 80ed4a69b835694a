// Package nginxconf renders the upstream include that nginx.upstream
// manages. The lab's load balancers start with the same rendering, so a
// plan that restores their first servers writes the file back byte for
// byte.
package nginxconf

import (
	"fmt"
	"strings"
)

// Upstream renders an upstream block for the http or stream context.
func Upstream(name string, servers []string, stream bool) []byte {
	var b strings.Builder
	kind := "http"
	if stream {
		kind = "stream"
	}
	fmt.Fprintf(&b, "# managed by orch (nginx.upstream, %s): changes here are overwritten\nupstream %s {\n", kind, name)
	for _, s := range servers {
		fmt.Fprintf(&b, "\tserver %s;\n", s)
	}
	b.WriteString("}\n")
	return []byte(b.String())
}
