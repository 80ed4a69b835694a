# jailconf.awk: reads jail.conf(5) files for the jail stand-in.
#
#   awk -v mode=params -v target=NAME -f jailconf.awk FILE
#       prints the resolved parameters of jail NAME, one "name<TAB>value"
#       line each, list values joined by \037 and newlines written as \036;
#       exit 2 when NAME is not defined
#   awk -v mode=names -f jailconf.awk FILE
#       prints the names of the jails defined, in file order
#
# The syntax follows jail.conf(5) and usr.sbin/jail/jaillex.l: comments
# (#, //, /* */), jail blocks "name { ... }", parameters outside blocks and
# in "*" or "prefix.*" blocks as wildcards, "=", "+=", valueless booleans
# (with the "no" prefix for false), comma lists, '...' strings taken as they
# are, "..." strings and bare words with $var and ${var} substitution done
# per jail, "$var = value;" variables, and .include "glob";. Errors read as
# jail(8) prints them: "FILE line N: TOKEN: syntax error".

BEGIN {
	SEP = "\037"
	REF0 = "\001"; REF1 = "\002"   # a variable reference in a value
	ntok = 0; nst = 0; failed = 0
	if (ARGC < 2) { print "jail: no configuration file" > "/dev/stderr"; exit 1 }
	readfile(ARGV[1])
	ARGC = 1
	if (!failed) parse()
	if (failed) exit 1
	if (mode == "names") { listnames(); exit 0 }
	exit resolve(target)
}

function err(msg) { print "jail: " msg > "/dev/stderr"; failed = 1 }

# readfile tokenizes a file (and the files it includes) onto tok*.
function readfile(path,    text, line, n) {
	text = ""; n = 0
	while ((getline line < path) > 0) { text = text line "\n"; n++ }
	close(path)
	if (n == 0 && text == "") {
		if ((getline line < path) < 0) { err(path ": No such file or directory"); return }
	}
	lex(path, text)
}

function addtok(type, val, raw, file, line, adj) {
	ntok++
	ttype[ntok] = type; tval[ntok] = val; traw[ntok] = raw
	tfile[ntok] = file; tline[ntok] = line; tadj[ntok] = adj
}

function isatom(c) { return c ~ /[A-Za-z0-9_!%&()\-.:<>?@\[\]^`|~*+\/]/ }

function escape(c) {
	if (c == "n") return "\n"; if (c == "t") return "\t"; if (c == "r") return "\r"
	if (c == "a") return "\007"; if (c == "b") return "\b"; if (c == "f") return "\f"
	if (c == "v") return "\013"
	return c
}

# lex splits text into tokens. Adjacent pieces of one string (a quoted part
# right after a bare word, a $var inside a word) become one STR token.
function lex(file, text,    i, n, c, d, line, val, raw, start, name, adj, prevstr, sline, pat) {
	n = length(text); i = 1; line = 1; prevstr = 0
	while (i <= n) {
		c = substr(text, i, 1)
		if (c == "\n") { line++; i++; prevstr = 0; continue }
		if (c == " " || c == "\t" || c == "\r") { i++; prevstr = 0; continue }
		if (c == "#" || substr(text, i, 2) == "//") {
			while (i <= n && substr(text, i, 1) != "\n") i++
			prevstr = 0; continue
		}
		if (substr(text, i, 2) == "/*") {
			start = line; i += 2
			while (i <= n && substr(text, i, 2) != "*/") { if (substr(text, i, 1) == "\n") line++; i++ }
			if (i > n) { err(file " line " start ": unterminated comment"); return }
			i += 2; prevstr = 0; continue
		}
		if (substr(text, i, 2) == "+=") { addtok("+=", "", "+=", file, line, 0); i += 2; prevstr = 0; continue }
		if (c == ";" && ntok >= 2 && ttype[ntok - 1] == "STR" && traw[ntok - 1] == ".include" && ttype[ntok] == "STR") {
			# .include "glob"; reads the files in place.
			pat = tval[ntok]; ntok -= 2; i++; prevstr = 0
			include(pat)
			if (failed) return
			continue
		}
		if (c == "{" || c == "}" || c == ";" || c == "=" || c == ",") {
			addtok(c, "", c, file, line, 0); i++; prevstr = 0; continue
		}
		# A string piece: quoted, a variable, or a bare word.
		adj = prevstr; sline = line
		if (c == "'") {
			val = ""; raw = "'"; i++
			while (i <= n && (d = substr(text, i, 1)) != "'") {
				if (d == "\n") line++
				if (d == "\\") { i++; d = substr(text, i, 1); val = val escape(d); raw = raw "\\" d; i++; continue }
				val = val d; raw = raw d; i++
			}
			if (i > n) { err(file " line " sline ": unterminated string"); return }
			i++; raw = raw "'"
		} else if (c == "\"") {
			val = ""; raw = "\""; i++
			while (i <= n && (d = substr(text, i, 1)) != "\"") {
				if (d == "\n") line++
				if (d == "\\") {
					i++; d = substr(text, i, 1)
					if (d == "\n") { line++; i++; continue }
					val = val escape(d); raw = raw "\\" d; i++; continue
				}
				if (d == "$") {
					name = varname(text, i + 1)
					if (name == "") { val = val d; raw = raw d; i++; continue }
					if (name == "{") { err(file " line " sline ": unterminated variable"); return }
					val = val REF0 substr(name, 2) REF1; raw = raw "$" substr(name, 2)
					i += 1 + length(substr(name, 2)) + (substr(name, 1, 1) == "{" ? 2 : 0)
					continue
				}
				val = val d; raw = raw d; i++
			}
			if (i > n) { err(file " line " sline ": unterminated string"); return }
			i++; raw = raw "\""
		} else if (c == "$") {
			name = varname(text, i + 1)
			if (name == "{") { err(file " line " sline ": unterminated variable"); return }
			if (name == "") { val = "$"; raw = "$"; i++ }
			else {
				val = REF0 substr(name, 2) REF1; raw = "$" substr(name, 2)
				i += 1 + length(substr(name, 2)) + (substr(name, 1, 1) == "{" ? 2 : 0)
			}
		} else if (c == "\\" || isatom(c)) {
			val = ""; raw = ""
			while (i <= n) {
				d = substr(text, i, 1)
				if (d == "\\") { i++; d = substr(text, i, 1); val = val escape(d); raw = raw "\\" d; i++; continue }
				if (!isatom(d)) break
				val = val d; raw = raw d; i++
			}
		} else {
			err(file " line " line ": " c ": syntax error"); return
		}
		if (adj && ntok > 0 && ttype[ntok] == "STR") {
			tval[ntok] = tval[ntok] val; traw[ntok] = traw[ntok] raw
		} else {
			addtok("STR", val, raw, file, sline, 0)
		}
		prevstr = 1
	}
}

# varname reads a variable name at text[i]: "=" name for $name, "{" name
# for ${name}, "{" alone for an unterminated ${, "" for no name.
function varname(text, i,    c, name, j) {
	c = substr(text, i, 1)
	if (c == "{") {
		j = index(substr(text, i + 1), "}")
		if (j == 0 || index(substr(text, i + 1, j), "\n")) return "{"
		return "{" substr(text, i + 1, j - 1)
	}
	if (c !~ /[A-Za-z_]/) return ""
	name = ""
	while (substr(text, i, 1) ~ /[A-Za-z_0-9]/) { name = name substr(text, i, 1); i++ }
	return "=" name
}

# The parser keeps the statements in file order: st_jail, st_name, st_op
# ("=", "+=" or "" for a bare name), st_val (values joined by SEP).
function parse(    p, jname, k) {
	p = 1
	while (p <= ntok && !failed) {
		if (ttype[p] == ";") { p++; continue }
		if (ttype[p] == "STR" && ttype[p + 1] == "{") {
			jname = tval[p]; p += 2
			jails[++njails] = jname
			while (p <= ntok && ttype[p] != "}" && !failed) {
				if (ttype[p] == ";") { p++; continue }
				p = param(p, jname)
			}
			if (failed) return
			if (p > ntok) { eof(); return }
			p++
			continue
		}
		p = param(p, "*")
	}
}

function eof() { err(tfile[ntok] ": unexpected EOF") }

function syntax(p) {
	if (p > ntok) eof()
	else err(tfile[p] " line " tline[p] ": " traw[p] ": syntax error")
}

# param parses "name [= | += value[, value...]] ;" starting at token p
# and returns the token after the ";".
function param(p, jname,    name, op, vals) {
	if (ttype[p] != "STR") { syntax(p); return p }
	name = tval[p]; p++; op = ""; vals = ""
	if (ttype[p] == "=" || ttype[p] == "+=") { op = ttype[p]; p++ }
	if (op != "" || ttype[p] == "STR") {
		if (ttype[p] != "STR") { syntax(p); return p }
		if (op == "") op = "="
		vals = tval[p]; p++
		while (ttype[p] == ",") {
			p++
			if (ttype[p] != "STR") { syntax(p); return p }
			vals = vals SEP tval[p]; p++
		}
	}
	if (ttype[p] != ";") { syntax(p); return p }
	nst++; st_jail[nst] = jname; st_name[nst] = name; st_op[nst] = op; st_val[nst] = vals
	return p + 1
}

function include(pat,    cmd, f, files, nf, k) {
	cmd = "for f in " pat "; do [ -e \"$f\" ] && echo \"$f\"; done"
	nf = 0
	while ((cmd | getline f) > 0) files[++nf] = f
	close(cmd)
	for (k = 1; k <= nf && !failed; k++) readfile(files[k])
}

function listnames(    k, seen) {
	for (k = 1; k <= njails; k++)
		if (jails[k] !~ /\*/ && !(jails[k] in seen)) { seen[jails[k]] = 1; print jails[k] }
}

function applies(jname, t) {
	if (jname == "*" || jname == t) return 1
	return jname ~ /\.\*$/ && index(t, substr(jname, 1, length(jname) - 1)) == 1
}

# Booleans given by name alone: "persist" is true, "nopersist" false; the
# "no" goes before the last component ("allow.nomount").
function boolname(name,    last, head) {
	last = name; head = ""
	if (match(name, /\.[^.]*$/)) { head = substr(name, 1, RSTART); last = substr(name, RSTART + 1) }
	if (last ~ /^no./) { negated = 1; return head substr(last, 3) }
	negated = 0
	return name
}

function resolve(t,    k, name, defined, isvar, n, order, v, pv) {
	defined = 0
	for (k = 1; k <= njails; k++) if (jails[k] == t) defined = 1
	if (!defined) return 2
	# The name is implied by the block, and a "name" parameter overrides it.
	n = 1; order[1] = "name"; val["name"] = t
	for (k = 1; k <= nst; k++) {
		if (!applies(st_jail[k], t)) continue
		name = st_name[k]
		isvar = substr(name, 1, 1) == REF0
		if (isvar) name = "$" substr(name, 2, length(name) - 2)
		if (st_op[k] == "") {
			name = boolname(name)
			v = negated ? "false" : "true"
			if (!(name in val)) order[++n] = name
			val[name] = v
			continue
		}
		if (!(name in val)) order[++n] = name
		if (st_op[k] == "+=" && (name in val) && val[name] != "") val[name] = val[name] SEP st_val[k]
		else val[name] = st_val[k]
	}
	for (k = 1; k <= n; k++) {
		name = order[k]
		if (substr(name, 1, 1) == "$") continue
		v = expand(val[name], name, t, 0)
		if (failed) return 1
		gsub(/\n/, "\036", v)   # one line per parameter; the reader turns \036 back
		printf "%s\t%s\n", name, v
	}
	return 0
}

# expand substitutes variable references: variables first, then
# parameters (a list becomes comma-separated).
function expand(s, pname, t, depth,    out, i, j, ref, r) {
	if (depth > 8) { err(t ": " pname ": variable loop"); return "" }
	out = ""
	while ((i = index(s, REF0)) > 0) {
		j = index(s, REF1)
		ref = substr(s, i + 1, j - i - 1)
		if (("$" ref) in val) r = val["$" ref]
		else if (ref in val) r = val[ref]
		else { err(t ": " pname ": unknown variable \"" ref "\""); return "" }
		gsub(SEP, ",", r)
		out = out substr(s, 1, i - 1) expand(r, pname, t, depth + 1)
		s = substr(s, j + 1)
	}
	return out s
}
