package data

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxARFFLine caps the length of one line of an ARFF file (16 MiB): a longer
// one is a format error rather than an unbounded allocation.
const MaxARFFLine = 16 << 20

// ReadTextARFF reads a text-classification file in Weka's ARFF format, the
// form in which Weka's examples ship the Reuters-21578 sets: a header of
// @relation and @attribute lines declaring exactly one string attribute (the
// text) and one nominal attribute (the class, {v0,v1,…}), in either order,
// then @data and one dense row per line. Lines starting with % are comments.
// A value is bare (up to the next comma, blanks trimmed) or quoted with ' or
// ", where a backslash escapes the next character: \n, \r and \t are a line
// feed, carriage return and tab, \uXXXX a UTF-16 code unit (a surrogate pair
// as two escapes), anything else stands for itself (\' \" \\ \%), as Weka's
// writer escapes them. A row's class is the index of its value among the
// declared ones, and classes returns the declared values in order.
//
// Sparse rows ({…}), missing values (a bare ?), other attribute types,
// invalid UTF-8 and any other malformation give a *FormatError naming name and
// the line; it never panics.
func ReadTextARFF(r io.Reader, name string) (ss []Sentence, classes []string, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxARFFLine)
	line := 0
	fail := func(format string, a ...any) error {
		return &FormatError{File: name, Line: line, Msg: fmt.Sprintf(format, a...)}
	}
	var (
		nAttr          int
		textAt, clsAt  = -1, -1
		inData, anyRel bool
	)
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '%' {
			continue
		}
		if !utf8.ValidString(s) {
			return nil, nil, fail("invalid UTF-8")
		}
		if !inData {
			kw, rest := s, ""
			if i := strings.IndexAny(s, " \t"); i >= 0 {
				kw, rest = s[:i], s[i+1:]
			}
			switch strings.ToLower(kw) {
			case "@relation":
				anyRel = true
			case "@attribute":
				vals, _, after, err := scanValue(rest)
				if err != nil {
					return nil, nil, fail("@attribute: %v", err)
				}
				attr, typ := vals, strings.TrimSpace(after)
				switch {
				case strings.EqualFold(typ, "string"):
					if textAt >= 0 {
						return nil, nil, fail("a second string attribute %q: want one string and one nominal attribute", attr)
					}
					textAt = nAttr
				case strings.HasPrefix(typ, "{") && strings.HasSuffix(typ, "}"):
					if clsAt >= 0 {
						return nil, nil, fail("a second nominal attribute %q: want one string and one nominal attribute", attr)
					}
					vs, _, err := splitValues(typ[1 : len(typ)-1])
					if err != nil {
						return nil, nil, fail("attribute %q: %v", attr, err)
					}
					seen := map[string]bool{}
					for _, v := range vs {
						if v == "" || seen[v] {
							return nil, nil, fail("attribute %q: empty or repeated class %q", attr, v)
						}
						seen[v] = true
					}
					if len(vs) < 2 {
						return nil, nil, fail("attribute %q: %d classes, want at least 2", attr, len(vs))
					}
					clsAt, classes = nAttr, vs
				default:
					return nil, nil, fail("attribute %q of type %q: want one string and one nominal attribute", attr, typ)
				}
				nAttr++
			case "@data":
				if !anyRel || textAt < 0 || clsAt < 0 || nAttr != 2 {
					return nil, nil, fail("@data before a @relation, one string and one nominal attribute")
				}
				inData = true
			default:
				return nil, nil, fail("unexpected %q in the header", kw)
			}
			continue
		}
		if s[0] == '{' {
			return nil, nil, fail("sparse rows are not supported")
		}
		vs, quoted, err := splitValues(s)
		if err != nil {
			return nil, nil, fail("%v", err)
		}
		if len(vs) != nAttr {
			return nil, nil, fail("%d values, want %d", len(vs), nAttr)
		}
		for i, v := range vs {
			if v == "?" && !quoted[i] {
				return nil, nil, fail("missing value in field %d", i+1)
			}
		}
		k := -1
		for j, c := range classes {
			if vs[clsAt] == c {
				k = j
			}
		}
		if k < 0 {
			return nil, nil, fail("class %q is not one of %v", vs[clsAt], classes)
		}
		ss = append(ss, Sentence{Text: vs[textAt], Class: k})
	}
	if err := sc.Err(); err != nil {
		line++
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, nil, fail("line longer than %d bytes", MaxARFFLine)
		}
		return nil, nil, &FormatError{File: name, Line: line, Msg: "read", Err: err}
	}
	if !inData {
		line = max(line, 1)
		return nil, nil, fail("no @data section")
	}
	return ss, classes, nil
}

// LoadTextARFF reads a text-classification ARFF file (see ReadTextARFF).
func LoadTextARFF(path string) (ss []Sentence, classes []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	return ReadTextARFF(f, path)
}

// splitValues splits a comma-separated list of ARFF values (see
// ReadTextARFF), reporting which were quoted.
func splitValues(s string) (vs []string, quoted []bool, err error) {
	for {
		v, q, rest, err := scanValue(s)
		if err != nil {
			return nil, nil, err
		}
		vs, quoted = append(vs, v), append(quoted, q)
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			return vs, quoted, nil
		}
		if rest[0] != ',' {
			return nil, nil, fmt.Errorf("want a comma after value %d, got %q", len(vs), clip(rest))
		}
		s = rest[1:]
	}
}

// scanValue reads one ARFF value from the start of s: a quoted one up to its
// closing quote, unescaped, or a bare one up to the next comma or blank.
func scanValue(s string) (v string, quoted bool, rest string, err error) {
	s = strings.TrimLeft(s, " \t")
	if s == "" || (s[0] != '\'' && s[0] != '"') {
		end := strings.IndexAny(s, ", \t")
		if end < 0 {
			end = len(s)
		}
		return s[:end], false, s[end:], nil
	}
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q:
			return b.String(), true, s[i+1:], nil
		case c != '\\':
			b.WriteByte(c)
		case i+1 == len(s):
			return "", false, "", fmt.Errorf("a backslash ends the line")
		default:
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r, n, err := unicodeEscape(s[i+1:])
				if err != nil {
					return "", false, "", err
				}
				b.WriteRune(r)
				i += n
			default:
				b.WriteByte(s[i])
			}
		}
	}
	return "", false, "", fmt.Errorf("unterminated quoted value %q", clip(s))
}

// unicodeEscape decodes the XXXX of a \uXXXX escape at the start of s, and a
// second \uXXXX that completes a surrogate pair; it returns the rune and the
// number of bytes read. A lone surrogate gives U+FFFD.
func unicodeEscape(s string) (rune, int, error) {
	hex4 := func(s string) (rune, bool) {
		if len(s) < 4 {
			return 0, false
		}
		v, err := strconv.ParseUint(s[:4], 16, 16)
		return rune(v), err == nil
	}
	r, ok := hex4(s)
	if !ok {
		return 0, 0, fmt.Errorf(`\u not followed by four hex digits`)
	}
	if 0xd800 <= r && r < 0xdc00 && len(s) >= 10 && s[4] == '\\' && s[5] == 'u' {
		if lo, ok := hex4(s[6:]); ok && 0xdc00 <= lo && lo < 0xe000 {
			return 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00), 10, nil
		}
	}
	if 0xd800 <= r && r < 0xe000 {
		return utf8.RuneError, 4, nil
	}
	return r, 4, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
