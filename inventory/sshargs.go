package inventory

import (
	"fmt"
	"strings"
)

// SSHArgs are the ssh command-line options orch honours from
// ansible_ssh_common_args, ansible_ssh_extra_args and ansible_ssh_args.
// Like ssh's own command line, they beat the ssh config. Every other
// option in those vars is reported by Warnings.
type SSHArgs struct {
	ProxyCommand        string   // -o ProxyCommand=…
	ProxyJump           string   // -J … or -o ProxyJump=…
	UserKnownHostsFiles []string // -o UserKnownHostsFile=…
	// StrictHostKeyChecking is "strict" (yes, ask), "accept-new" or "off"
	// (no, off), from -o StrictHostKeyChecking=…; "" when not given.
	StrictHostKeyChecking string
}

type sshArgsVar struct{ key, val, at string }

// applySSHArgs reads one ssh args var into h.SSH. Where two vars set the
// same option, the first one read wins, as in ssh, which Ansible calls with
// ssh_args, then common args, then extra args.
func (inv *Inventory) applySSHArgs(h *Host, a sshArgsVar) error {
	words, err := shellWords(a.val, false)
	if err != nil {
		return fmt.Errorf("%shost %q: %s: %v", prefix(a.at), h.Name, a.key, err)
	}
	ignored := func(what string) {
		inv.note(h.Name, fmt.Sprintf("%s: %s is not supported by orch and is ignored", a.key, what))
	}
	for i := 0; i < len(words); i++ {
		w := words[i]
		if len(w) < 2 || w[0] != '-' {
			ignored(fmt.Sprintf("%q", w))
			continue
		}
		flag, arg := w[:2], w[2:]
		if strings.ContainsRune(sshFlagsWithArg, rune(w[1])) && arg == "" {
			if i+1 >= len(words) {
				ignored(fmt.Sprintf("%q without its argument", w))
				continue
			}
			i++
			arg = words[i]
		}
		switch flag {
		case "-J":
			if h.SSH.ProxyJump == "" && h.SSH.ProxyCommand == "" {
				h.SSH.ProxyJump = arg
			}
		case "-o":
			if !inv.sshOption(h, arg) {
				ignored(fmt.Sprintf("-o %s", arg))
			}
		default:
			if strings.ContainsRune(sshFlagsWithArg, rune(w[1])) {
				ignored(fmt.Sprintf("%s %s", flag, arg))
			} else {
				ignored(w)
			}
		}
	}
	return nil
}

// sshFlagsWithArg are the ssh options that take an argument (ssh(1)).
const sshFlagsWithArg = "BbcDEeFIiJLlmOoPpQRSWw"

// sshOption applies "-o Keyword=value" (or "Keyword value") and reports
// whether orch honours the keyword.
func (inv *Inventory) sshOption(h *Host, opt string) bool {
	k, v, ok := strings.Cut(opt, "=")
	if i := strings.IndexAny(opt, " \t"); i >= 0 && (!ok || i < len(k)) {
		k, v = opt[:i], strings.TrimLeft(opt[i:], " \t=")
	}
	v = strings.TrimSpace(v)
	switch strings.ToLower(strings.TrimSpace(k)) {
	case "proxycommand":
		if h.SSH.ProxyCommand == "" && h.SSH.ProxyJump == "" {
			h.SSH.ProxyCommand = v
		}
	case "proxyjump":
		if h.SSH.ProxyJump == "" && h.SSH.ProxyCommand == "" {
			h.SSH.ProxyJump = v
		}
	case "userknownhostsfile":
		if h.SSH.UserKnownHostsFiles == nil {
			h.SSH.UserKnownHostsFiles = strings.Fields(v)
		}
	case "stricthostkeychecking":
		var policy string
		switch strings.ToLower(v) {
		case "yes", "ask":
			policy = "strict"
		case "accept-new":
			policy = "accept-new"
		case "no", "off":
			policy = "off"
		default:
			return false
		}
		if h.SSH.StrictHostKeyChecking == "" {
			h.SSH.StrictHostKeyChecking = policy
		}
	default:
		return false
	}
	return true
}
