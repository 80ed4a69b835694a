package cloud

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// linodeFilter is a parsed X-Filter header, the Linode API's JSON filter
// language as linodego encodes it:
//
//	{"label": "ns1"}                                   equality
//	{"tags": "dns"}                                    a list field contains the value
//	{"label": {"+contains": "ns"}}                     +eq +neq +contains +gt +gte +lt +lte
//	{"+and": [{"tags": "dns"}, {"label": "ns1"}]}      also +or; several keys in one object are ANDed
//	{"+order_by": "label", "+order": "desc"}
type linodeFilter struct {
	match   predicate
	orderBy string
	desc    bool
}

type predicate func(obj map[string]any) (bool, error)

func matchAll(map[string]any) (bool, error) { return true, nil }

func parseLinodeFilter(raw string) (linodeFilter, error) {
	f := linodeFilter{match: matchAll}
	if strings.TrimSpace(raw) == "" {
		return f, nil
	}
	var node map[string]any
	if err := json.Unmarshal([]byte(raw), &node); err != nil {
		return f, errors.New("Invalid JSON in X-Filter header")
	}
	if v, ok := node["+order_by"]; ok {
		field, ok := v.(string)
		if !ok {
			return f, errors.New("+order_by must be a field name")
		}
		f.orderBy = field
		delete(node, "+order_by")
	}
	if v, ok := node["+order"]; ok {
		switch v {
		case "asc":
		case "desc":
			f.desc = true
		default:
			return f, errors.New("+order must be asc or desc")
		}
		delete(node, "+order")
	}
	m, err := compileFilter(node)
	if err != nil {
		return f, err
	}
	f.match = m
	return f, nil
}

func compileFilter(node map[string]any) (predicate, error) {
	var preds []predicate
	for key, val := range node {
		switch {
		case key == "+and" || key == "+or":
			list, ok := val.([]any)
			if !ok {
				return nil, fmt.Errorf("%s must be a list of filters", key)
			}
			var subs []predicate
			for _, item := range list {
				obj, ok := item.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("%s must be a list of filters", key)
				}
				p, err := compileFilter(obj)
				if err != nil {
					return nil, err
				}
				subs = append(subs, p)
			}
			preds = append(preds, combine(key == "+or", subs))
		case strings.HasPrefix(key, "+"):
			return nil, fmt.Errorf("Unknown filter operator %s", key)
		default:
			p, err := compileField(key, val)
			if err != nil {
				return nil, err
			}
			preds = append(preds, p)
		}
	}
	return combine(false, preds), nil
}

// combine ANDs preds, or ORs them when or is set.
func combine(or bool, preds []predicate) predicate {
	return func(obj map[string]any) (bool, error) {
		if len(preds) == 0 {
			return true, nil
		}
		for _, p := range preds {
			ok, err := p(obj)
			if err != nil {
				return false, err
			}
			if ok == or {
				return or, nil
			}
		}
		return !or, nil
	}
}

func compileField(field string, val any) (predicate, error) {
	op, want := "+eq", val
	if m, ok := val.(map[string]any); ok {
		if len(m) != 1 {
			return nil, fmt.Errorf("Filter on %s must have exactly one operator", field)
		}
		for k, v := range m {
			op, want = k, v
		}
	}
	switch want.(type) {
	case string, float64, bool, nil:
	default:
		return nil, fmt.Errorf("Filter on %s must compare with a string, number or boolean", field)
	}
	switch op {
	case "+eq", "+neq", "+contains", "+gt", "+gte", "+lt", "+lte":
	default:
		return nil, fmt.Errorf("Unknown filter operator %s", op)
	}
	return func(obj map[string]any) (bool, error) {
		have, ok := obj[field]
		if !ok {
			return false, fmt.Errorf("Cannot filter on %s", field)
		}
		if list, ok := have.([]any); ok {
			if op == "+neq" {
				for _, item := range list {
					if compareValues(item, want) == 0 && sameKind(item, want) {
						return false, nil
					}
				}
				return true, nil
			}
			for _, item := range list {
				if test(op, item, want) {
					return true, nil
				}
			}
			return false, nil
		}
		return test(op, have, want), nil
	}, nil
}

func test(op string, have, want any) bool {
	if op == "+contains" {
		h, ok1 := have.(string)
		w, ok2 := want.(string)
		return ok1 && ok2 && strings.Contains(strings.ToLower(h), strings.ToLower(w))
	}
	if !sameKind(have, want) {
		return op == "+neq"
	}
	c := compareValues(have, want)
	switch op {
	case "+eq":
		return c == 0
	case "+neq":
		return c != 0
	case "+gt":
		return c > 0
	case "+gte":
		return c >= 0
	case "+lt":
		return c < 0
	case "+lte":
		return c <= 0
	}
	return false
}

func sameKind(a, b any) bool {
	return fmt.Sprintf("%T", a) == fmt.Sprintf("%T", b)
}

// compareValues orders JSON scalars of the same kind; nil sorts first.
func compareValues(a, b any) int {
	switch x := a.(type) {
	case float64:
		if y, ok := b.(float64); ok {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	case bool:
		if y, ok := b.(bool); ok {
			switch {
			case x == y:
				return 0
			case !x:
				return -1
			}
			return 1
		}
	case nil:
		if b == nil {
			return 0
		}
		return -1
	}
	if b == nil {
		return 1
	}
	return 0
}
