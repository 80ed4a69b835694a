package engine

import (
	"encoding/json"
	"slices"
	"strings"
)

// Mask replaces secrets in events, the journal and errors.
const Mask = "********"

// secretValues are the values a run must never show: the become password,
// the -e args named secret and the embedder's other secrets.
func secretValues(opts Options) []string {
	vals := append([]string{opts.BecomePassword}, opts.Secrets...)
	for _, k := range opts.SecretArgs {
		vals = append(vals, opts.Args[k])
	}
	return vals
}

// maskArgs is the args as run.json keeps them: secret ones masked.
func maskArgs(args map[string]string, secret []string) map[string]string {
	if len(secret) == 0 {
		return args
	}
	out := make(map[string]string, len(args))
	for k, v := range args {
		if slices.Contains(secret, k) {
			v = Mask
		}
		out[k] = v
	}
	return out
}

// redactor masks secret values wherever they appear: as they are, and as
// JSON writes them inside a string. The zero value masks nothing.
type redactor struct {
	r *strings.Replacer
}

func newRedactor(values []string) redactor {
	var forms []string
	for _, v := range values {
		if v == "" {
			continue
		}
		forms = append(forms, v)
		if b, err := json.Marshal(v); err == nil {
			if quoted := string(b[1 : len(b)-1]); quoted != v {
				forms = append(forms, quoted)
			}
		}
	}
	if len(forms) == 0 {
		return redactor{}
	}
	// Longest first, so a secret that contains another is masked whole.
	slices.SortFunc(forms, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(forms))
	for _, f := range slices.Compact(forms) {
		pairs = append(pairs, f, Mask)
	}
	return redactor{strings.NewReplacer(pairs...)}
}

func (rd redactor) string(s string) string {
	if rd.r == nil || s == "" {
		return s
	}
	return rd.r.Replace(s)
}

// event masks every text field of an event.
func (rd redactor) event(e Event) Event {
	if rd.r == nil {
		return e
	}
	for _, f := range []*string{&e.Plan, &e.Role, &e.Host, &e.Task, &e.Pos, &e.Step, &e.Msg, &e.Diff, &e.Output, &e.Target, &e.Guard} {
		*f = rd.string(*f)
	}
	return e
}

// json masks a journaled JSON value (a step's result): a step that returns
// a secret is journaled with the mask, and a resumed run gets the mask.
func (rd redactor) json(raw json.RawMessage) json.RawMessage {
	if rd.r == nil || len(raw) == 0 {
		return raw
	}
	masked := rd.r.Replace(string(raw))
	switch {
	case masked == string(raw):
		return raw
	case !json.Valid([]byte(masked)):
		return json.RawMessage(`"` + Mask + `"`) // a secret that spanned the JSON's syntax
	}
	return json.RawMessage(masked)
}

// err masks an error's text, keeping what it wraps for errors.As.
func (rd redactor) err(err error) error {
	if err == nil || rd.r == nil {
		return err
	}
	if msg := rd.r.Replace(err.Error()); msg != err.Error() {
		return &redactedError{msg: msg, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
