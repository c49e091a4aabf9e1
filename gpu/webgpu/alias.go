//go:build cgo || js

package webgpu

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Browsers (Dawn) reject a dispatch in which a writable storage binding
// overlaps another binding of the same dispatch, and then drop the whole
// command buffer; wgpu-native does not check. Every binding here is
// read_write (so in-place ops need no special kernels), so the device binds
// a copy for each duplicate that the kernel only reads. Which bindings a
// kernel writes is read off its WGSL entry point, so the rule follows the
// shaders as they change.

var (
	bindingDecl = regexp.MustCompile(`@binding\((\d+)\)\s*var<storage,\s*read_write>\s*(\w+)`)
	entryStart  = regexp.MustCompile(`\bfn\s+(\w+)\s*\(`)
)

// writtenBindings returns, for the entry point entry of the WGSL source
// src, the storage bindings its body assigns to (plain or compound
// assignment, or an atomic store or read-modify-write).
func writtenBindings(src, entry string) map[int]bool {
	names := map[string]int{}
	for _, m := range bindingDecl.FindAllStringSubmatch(src, -1) {
		i, _ := strconv.Atoi(m[1])
		names[m[2]] = i
	}
	body := reachable(src, entry, map[string]bool{})
	out := map[int]bool{}
	for name, idx := range names {
		assign := regexp.MustCompile(`\b` + name + `\s*\[`)
		for _, loc := range assign.FindAllStringIndex(body, -1) {
			if assigns(body[loc[1]-1:]) {
				out[idx] = true
			}
		}
		if regexp.MustCompile(`atomic(Store|Add|Sub|Max|Min|And|Or|Xor|Exchange|CompareExchangeWeak)\s*\(\s*&\s*` + name + `\b`).MatchString(body) {
			out[idx] = true
		}
	}
	return out
}

var callee = regexp.MustCompile(`\b(\w+)\s*\(`)

// reachable returns the bodies of fn entry and of every function of src it
// calls, directly or not (a helper such as store_c may do the writing).
func reachable(src, entry string, seen map[string]bool) string {
	seen[entry] = true
	body := functionBody(src, entry)
	all := body
	for _, m := range callee.FindAllStringSubmatch(body, -1) {
		if !seen[m[1]] && functionBody(src, m[1]) != "" {
			all += "\n" + reachable(src, m[1], seen)
		}
	}
	return all
}

// functionBody returns the text between the braces of fn entry ("" if src
// defines no such function).
func functionBody(src, entry string) string {
	for _, m := range entryStart.FindAllStringSubmatchIndex(src, -1) {
		if src[m[2]:m[3]] != entry {
			continue
		}
		open := strings.IndexByte(src[m[1]:], '{')
		if open < 0 {
			return ""
		}
		start, depth := m[1]+open, 0
		for i := start; i < len(src); i++ {
			switch src[i] {
			case '{':
				depth++
			case '}':
				if depth--; depth == 0 {
					return src[start+1 : i]
				}
			}
		}
	}
	return ""
}

// assigns reports whether s, which starts at an index expression "[…]",
// continues with an assignment operator after the closing bracket.
func assigns(s string) bool {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			if depth--; depth == 0 {
				rest := strings.TrimLeft(s[i+1:], " \t\r\n")
				if strings.HasPrefix(rest, "[") || strings.HasPrefix(rest, ".") { // a[i][j], a[i].x
					return assigns(rest)
				}
				if len(rest) >= 2 && strings.ContainsRune("+-*/%&|^", rune(rest[0])) && rest[1] == '=' {
					return true
				}
				return len(rest) >= 1 && rest[0] == '=' && (len(rest) < 2 || rest[1] != '=')
			}
		}
	}
	return false
}

// unalias replaces, in a dispatch of kernel k, every binding that repeats a
// buffer bound elsewhere by a pooled copy taken just before the dispatch,
// keeping the original where k writes it. Written duplicates are allowed
// only for the dummy buffer of absent optional outputs, whose contents
// nobody reads. It returns the copies, to be pooled after recording.
func (d *Device) unalias(name string, k *kernel, bs []binding) (copies []binding) {
	for i := range bs {
		for j := range bs {
			if j == i || bs[j].buf != bs[i].buf || (k.writes[i+1] && !k.writes[j+1]) {
				continue
			}
			if k.writes[i+1] && bs[i].buf != d.dummy {
				panic(fmt.Sprintf("webgpu: %s: output bindings %d and %d are the same buffer", name, i+1, j+1))
			}
			tmp := d.work("alias", bs[i].size)
			d.endPass()
			d.encoder().CopyBufferToBuffer(bs[i].buf, 0, tmp, 0, (bs[i].size+3)&^3)
			bs[i] = binding{tmp, bs[i].size}
			copies = append(copies, bs[i])
			break
		}
	}
	return copies
}
