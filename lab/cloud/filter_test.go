package cloud

import (
	"strings"
	"testing"
)

func TestLinodeFilter(t *testing.T) {
	ns1 := map[string]any{"id": 1.0, "label": "ns1", "tags": []any{"dns", "prod"}, "status": "running", "image": nil}
	web := map[string]any{"id": 2.0, "label": "web1", "tags": []any{}, "status": "offline", "image": "linode/debian12"}
	tests := []struct {
		filter   string
		ns1, web bool
		err      string
	}{
		{filter: ``, ns1: true, web: true},
		{filter: `{}`, ns1: true, web: true},
		{filter: `{"label":"ns1"}`, ns1: true},
		{filter: `{"tags":"dns"}`, ns1: true},
		{filter: `{"tags":"web"}`},
		{filter: `{"label":"ns1","tags":"prod"}`, ns1: true},
		{filter: `{"label":"ns1","tags":"web"}`},
		{filter: `{"+and":[{"tags":"dns"},{"status":"running"}]}`, ns1: true},
		{filter: `{"+or":[{"label":"web1"},{"label":"ns1"}]}`, ns1: true, web: true},
		{filter: `{"+or":[]}`, ns1: true, web: true},
		{filter: `{"label":{"+contains":"WEB"}}`, web: true},
		{filter: `{"label":{"+neq":"ns1"}}`, web: true},
		{filter: `{"tags":{"+neq":"dns"}}`, web: true},
		{filter: `{"id":{"+gt":1}}`, web: true},
		{filter: `{"id":{"+lte":1}}`, ns1: true},
		{filter: `{"image":null}`, ns1: true},
		{filter: `{"+order_by":"label","+order":"desc","status":"offline"}`, web: true},
		{filter: `{"nosuch":"x"}`, err: "Cannot filter on nosuch"},
		{filter: `{"label":{"+regex":"x"}}`, err: "Unknown filter operator +regex"},
		{filter: `{"+xor":[]}`, err: "Unknown filter operator"},
		{filter: `{"+and":{"label":"x"}}`, err: "must be a list"},
		{filter: `{"label":["a"]}`, err: "must compare with"},
		{filter: `{"+order":"up"}`, err: "+order"},
		{filter: `not json`, err: "Invalid JSON"},
	}
	for _, tt := range tests {
		f, err := parseLinodeFilter(tt.filter)
		var got [2]bool
		for i, obj := range []map[string]any{ns1, web} {
			if err != nil {
				break
			}
			got[i], err = f.match(obj)
		}
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err = %v, want %q", tt.filter, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.filter, err)
			continue
		}
		if got != [2]bool{tt.ns1, tt.web} {
			t.Errorf("%s: matches ns1=%v web=%v, want %v %v", tt.filter, got[0], got[1], tt.ns1, tt.web)
		}
	}
	if f, _ := parseLinodeFilter(`{"+order_by":"label","+order":"desc"}`); f.orderBy != "label" || !f.desc {
		t.Errorf("order = %+v", f)
	}
}
