package engine

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzStepsJournal reads any bytes as steps.jsonl, the journal resume
// trusts. It must not panic; a record torn by a crash (any proper prefix
// of a record, as a kill mid-write leaves it) changes nothing; a "done"
// record appended for a step makes it completed with its result; a later
// "failed" or "undone" record makes it not completed again. Seeds:
// testdata/fuzz/FuzzStepsJournal/.
func FuzzStepsJournal(f *testing.F) {
	f.Add([]byte(`{"step":"one","status":"start"}`+"\n"+`{"step":"one","status":"done","result":["a",1]}`+"\n"), "two", []byte(`{"h":{"__host__":{"Name":"x"}}}`), uint(7))
	f.Add([]byte(`{"step":"a","status":"done"}`+"\n"+`{"step":"a","status":"undone"}`+"\n"+`{"step":"b","status":"do`), "a", []byte(`null`), uint(3))
	f.Fuzz(func(t *testing.T, journal []byte, step string, result []byte, cut uint) {
		base, err := completedSteps(bytes.NewReader(journal))
		if err != nil {
			return // a record over 64 MiB: refused, not misread
		}
		if !json.Valid(result) {
			result = nil
		}
		rec, _ := json.Marshal(StepRecord{Step: step, Status: "done", Result: result})
		var named StepRecord
		json.Unmarshal(rec, &named) // the name as JSON carries it (invalid UTF-8 becomes U+FFFD)
		lead := append(bytes.Clone(journal), '\n')

		torn := append(bytes.Clone(lead), rec[:cut%uint(len(rec))]...)
		if got, err := completedSteps(bytes.NewReader(torn)); err != nil || !reflect.DeepEqual(got, base) {
			t.Fatalf("a torn record %q changed the journal: %v, was %v (%v)", rec[:cut%uint(len(rec))], got, base, err)
		}
		if named.Step == "" {
			return
		}
		done := append(append(bytes.Clone(lead), rec...), '\n')
		got, err := completedSteps(bytes.NewReader(done))
		if r, ok := got[named.Step]; err != nil || !ok || !bytes.Equal(r, named.Result) {
			t.Fatalf("after a done record of %q: %v (%v)", named.Step, got, err)
		}
		for name, r := range base {
			if name != named.Step && !bytes.Equal(got[name], r) {
				t.Fatalf("a done record of %q changed step %q", named.Step, name)
			}
		}
		failed, _ := json.Marshal(StepRecord{Step: named.Step, Status: "failed"})
		got, _ = completedSteps(bytes.NewReader(append(done, failed...)))
		if _, ok := got[named.Step]; ok {
			t.Fatalf("%q failed after it was done, and still counts as completed", named.Step)
		}
	})
}

// FuzzRunRecord reads any bytes as run.json and any string as a run ID.
// A record that parses writes back to JSON that parses to the same record;
// a run ID that is accepted names a folder directly under runs/.
// Seeds: testdata/fuzz/FuzzRunRecord/.
func FuzzRunRecord(f *testing.F) {
	f.Add([]byte(`{"id":"20261201-101010-abcdef","plan":"/p/plan.star","args":{"a":"********"},"secret_args":["a"],"inventory":{"digest":"sha256:00","hosts":{"h1":"sha256:11"}},"started":"2026-12-01T10:10:10Z"}`), "20261201-101010-abcdef")
	f.Add([]byte(`{"id":"x","plan":"p","plan_files":{"roles/a.star":"sha256:22"},"exec_timeout":3000000000}`), "../x")
	f.Fuzz(func(t *testing.T, data []byte, id string) {
		if validRunID(id) {
			dir := filepath.Join("/state", "runs", id)
			if filepath.Dir(dir) != "/state/runs" || strings.ContainsAny(id, "/\\") {
				t.Fatalf("run ID %q leaves runs/: %s", id, dir)
			}
		}
		rec, err := parseRunRecord(data)
		if err != nil {
			return
		}
		out, err := json.Marshal(rec)
		if err != nil {
			t.Fatalf("a parsed record does not marshal: %v", err)
		}
		again, err := parseRunRecord(out)
		if err != nil {
			t.Fatalf("a record written back does not parse: %v\n%s", err, out)
		}
		if out2, _ := json.Marshal(again); !bytes.Equal(out, out2) {
			t.Fatalf("round trip changed the record:\n%s\n%s", out, out2)
		}
	})
}

// FuzzNotesJournal: notes.jsonl, torn records included, never panics, and
// keeps only well-formed notes.
func FuzzNotesJournal(f *testing.F) {
	f.Add([]byte(`{"file":"roles/a.star","digest":"sha256:00"}` + "\n" + `{"host":"web1","change":"added"}` + "\n" + `{"host":"web2","chan`))
	f.Fuzz(func(t *testing.T, data []byte) {
		notes, err := readNotes(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, n := range notes {
			if (n.File == "" || n.Digest == "") && (n.Host == "" || (n.Change != "added" && n.Change != "removed")) {
				t.Fatalf("a malformed note was kept: %+v", n)
			}
		}
	})
}
