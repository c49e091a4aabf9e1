//go:build !js

package data

import (
	"bytes"
	"encoding/base64"
	"html"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
)

// maxMIMEDepth bounds the nesting of multipart bodies and attached messages
// that EmailText follows; deeper parts give no text.
const maxMIMEDepth = 16

// EmailText returns the readable text of a raw e-mail message (RFC 5322 with
// MIME, as the SpamAssassin corpus stores them), by these rules:
//
//   - Headers are dropped, the subject included; an mbox "From " line before
//     them too. The header ends at the first empty line, or at the first line
//     that is neither a "Name: value" field nor its continuation (broken
//     parts that start with their text).
//   - multipart/alternative gives its best part: the first text/plain part
//     with any text, else the first text/html part with text, else the first
//     other part with text. Every other multipart (mixed, related, signed,
//     report, …) gives the text of each of its parts in order, separated by a
//     blank line. message/rfc822 gives the text of the attached message.
//     An entity without a Content-Type whose body starts (after blank lines)
//     with a line "--X" and then a header field is read as
//     multipart/alternative with boundary X: senders that lose the header
//     send the plain and HTML versions so.
//     Parts are split at the lines "--boundary"; a missing closing line ends
//     the last part at the end of the body; a multipart body without a
//     boundary or without any delimiter line is read as text/plain. Nesting
//     deeper than 16 levels gives no text.
//   - text/html is converted to text (see htmlText); other text/* types and
//     a part without a Content-Type are plain text, except that plain text
//     starting with "<html" or "<!doctype html" is read as HTML; any other
//     type (images, applications) gives no text.
//   - Content-Transfer-Encoding quoted-printable and base64 are decoded
//     leniently: a malformed =XX escape is kept as it is, and base64 is read
//     up to its padding or the first undecodable group, ignoring any
//     characters outside the alphabet.
//   - Non-UTF-8 text is converted by this rule: a part whose charset
//     parameter (for HTML whose parameter names no known encoding: the
//     charset of a <meta> tag in its first 2 KiB) names a WHATWG encoding
//     other than UTF-8 and windows-1252
//     (which covers us-ascii and iso-8859-1) is decoded with it (ISO-8859-x,
//     windows-125x, KOI8, Big5, GBK, EUC-KR, ISO-2022-JP, …); otherwise
//     (UTF-8, windows-1252 and its aliases, an unknown or missing charset)
//     the bytes are taken as UTF-8 when they are valid UTF-8, and decoded as
//     windows-1252 when they are not. Undecodable bytes become U+FFFD.
//   - The result has \n line ends, no control characters but \n and \t, no
//     trailing blanks on a line, at most one empty line in a row, and no
//     leading or trailing white space. A message with no text gives "".
//
// EmailText never fails and never panics: every input gives some text. It
// is not built on js (its charset tables would weigh on the browser's
// bundle, which reads no e-mail).
func EmailText(raw []byte) string {
	if bytes.HasPrefix(raw, []byte("From ")) { // mbox separator line
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[i+1:]
		} else {
			raw = nil
		}
	}
	hdr, body := splitHeader(raw)
	return tidyText(partText(hdr, body, 0))
}

// splitHeader returns the header fields of a message or MIME part (names
// lowercased, continuation lines unfolded, the first occurrence of a name
// kept) and its body.
func splitHeader(b []byte) (map[string]string, []byte) {
	hdr := map[string]string{}
	last := "" // the field that continuation lines extend; "" drops them
	for len(b) > 0 {
		line, next := b, []byte(nil)
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, next = b[:i], b[i+1:]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case len(line) == 0:
			return hdr, next
		case line[0] == ' ' || line[0] == '\t':
			if last != "" {
				hdr[last] += " " + strings.TrimSpace(string(line))
			}
		default:
			i := bytes.IndexByte(line, ':')
			if i <= 0 || bytes.ContainsAny(line[:i], " \t") {
				return hdr, b // the body starts without an empty line
			}
			name := strings.ToLower(string(line[:i]))
			last = ""
			if _, seen := hdr[name]; !seen {
				hdr[name] = strings.TrimSpace(string(line[i+1:]))
				last = name
			}
		}
		b = next
	}
	return hdr, nil
}

// partText is the text of one MIME entity at the given nesting depth.
func partText(hdr map[string]string, body []byte, depth int) string {
	if depth > maxMIMEDepth {
		return ""
	}
	mt, params := parseContentType(hdr["content-type"])
	if _, ok := hdr["content-type"]; !ok {
		if b := implicitBoundary(body); b != "" {
			mt, params = "multipart/alternative", map[string]string{"boundary": b}
		}
	}
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		parts := splitMultipart(body, params["boundary"])
		if parts == nil {
			return decodeText(hdr, body, "text/plain", params)
		}
		if mt == "multipart/alternative" {
			return bestAlternative(parts, depth)
		}
		var texts []string
		for _, p := range parts {
			h, b := splitHeader(p)
			if t := strings.TrimSpace(partText(h, b, depth+1)); t != "" {
				texts = append(texts, t)
			}
		}
		return strings.Join(texts, "\n\n")
	case mt == "message/rfc822":
		h, b := splitHeader(transferDecode(hdr, body))
		return partText(h, b, depth+1)
	case mt == "" || strings.HasPrefix(mt, "text/"):
		return decodeText(hdr, body, mt, params)
	}
	return ""
}

// implicitBoundary returns the boundary of a multipart body whose entity
// lacks its Content-Type: a body whose first line that is not blank is
// "--X", followed by a header field line, has boundary X. Otherwise "".
func implicitBoundary(body []byte) string {
	lines := strings.SplitN(string(body[:min(len(body), 4096)]), "\n", 64)
	for i, l := range lines {
		l = strings.TrimRight(l, " \t\r")
		if l == "" {
			continue
		}
		if !strings.HasPrefix(l, "--") || len(l) < 3 || i+1 >= len(lines) {
			return ""
		}
		next := lines[i+1]
		if k := strings.IndexByte(next, ':'); k > 0 && !strings.ContainsAny(next[:k], " \t") {
			return l[2:]
		}
		return ""
	}
	return ""
}

// bestAlternative picks the text of a multipart/alternative's parts: plain
// text first, then HTML, then anything else that has text.
func bestAlternative(parts [][]byte, depth int) string {
	best, rank := "", 4
	for _, p := range parts {
		h, b := splitHeader(p)
		mt, _ := parseContentType(h["content-type"])
		r := 3
		switch {
		case mt == "" || mt == "text/plain":
			r = 1
		case mt == "text/html":
			r = 2
		}
		if r >= rank {
			continue
		}
		if t := strings.TrimSpace(partText(h, b, depth+1)); t != "" {
			best, rank = t, r
		}
	}
	return best
}

// decodeText decodes a text part's transfer encoding and charset and, for
// HTML, converts it to text. mt is its media type ("" for none).
func decodeText(hdr map[string]string, body []byte, mt string, params map[string]string) string {
	b := transferDecode(hdr, body)
	charset := params["charset"]
	isHTML := mt == "text/html" || looksHTML(string(b[:min(len(b), 64)]))
	if _, err := htmlindex.Get(normLabel(charset)); err != nil && isHTML {
		charset = metaCharset(b)
	}
	s := toUTF8(b, charset)
	if isHTML {
		return htmlText(s)
	}
	return s
}

// metaRE finds the charset of an HTML document's <meta> tag.
var metaRE = regexp.MustCompile(`(?i)<meta[^>]*charset\s*=\s*["']?([a-z0-9_:.+-]+)`)

// metaCharset returns the charset that a <meta> tag in the first 2 KiB of an
// HTML document declares ("" if none).
func metaCharset(b []byte) string {
	if m := metaRE.FindSubmatch(b[:min(len(b), 2048)]); m != nil {
		return string(m[1])
	}
	return ""
}

// normLabel normalizes a charset parameter for htmlindex.
func normLabel(charset string) string {
	return strings.ToLower(strings.Trim(strings.TrimSpace(charset), `"'`))
}

// looksHTML reports whether plain text is an HTML document in disguise.
func looksHTML(s string) bool {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	if len(s) > 16 {
		s = s[:16]
	}
	s = strings.ToLower(s)
	return strings.HasPrefix(s, "<html") || strings.HasPrefix(s, "<!doctype html")
}

// parseContentType splits a Content-Type value into its lowercased media
// type and its parameters (names lowercased, quotes removed), leniently: a
// parameter without = or with an unbalanced quote is read as far as it goes.
func parseContentType(v string) (string, map[string]string) {
	params := map[string]string{}
	var fields []string
	inQuote, start := false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			inQuote = !inQuote
		case ';':
			if !inQuote {
				fields = append(fields, v[start:i])
				start = i + 1
			}
		}
	}
	fields = append(fields, v[start:])
	mt := strings.ToLower(strings.TrimSpace(fields[0]))
	if i := strings.IndexAny(mt, " \t"); i >= 0 { // "text/plain charset=…" without the ;
		mt = mt[:i]
	}
	for _, f := range fields[1:] {
		k, val, ok := strings.Cut(f, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			continue
		}
		val = strings.TrimSpace(val)
		if strings.HasPrefix(val, `"`) {
			val = val[1:]
			if i := strings.IndexByte(val, '"'); i >= 0 {
				val = val[:i]
			}
		}
		if _, seen := params[k]; !seen {
			params[k] = val
		}
	}
	return mt, params
}

// splitMultipart cuts a multipart body at its delimiter lines "--boundary"
// (the closing one "--boundary--"), dropping the preamble and epilogue. It
// returns nil when the boundary is empty or no delimiter line is found.
func splitMultipart(body []byte, boundary string) [][]byte {
	if boundary == "" {
		return nil
	}
	delim := []byte("--" + boundary)
	var parts [][]byte
	start := -1 // start of the current part, -1 before the first delimiter
	for pos := 0; pos < len(body); {
		end := bytes.IndexByte(body[pos:], '\n')
		next := len(body)
		if end >= 0 {
			end += pos
			next = end + 1
		} else {
			end = len(body)
		}
		line := bytes.TrimRight(body[pos:end], " \t\r")
		if bytes.HasPrefix(line, delim) {
			rest := line[len(delim):]
			closing := bytes.Equal(rest, []byte("--"))
			if closing || len(rest) == 0 {
				if start >= 0 {
					parts = append(parts, trimLineEnd(body[start:pos]))
				}
				if closing {
					return parts
				}
				start = next
			}
		}
		pos = next
	}
	if start < 0 {
		return nil
	}
	if start < len(body) {
		parts = append(parts, body[start:])
	}
	return parts
}

// trimLineEnd drops the line end that belongs to the delimiter after a part.
func trimLineEnd(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// transferDecode undoes a part's Content-Transfer-Encoding.
func transferDecode(hdr map[string]string, body []byte) []byte {
	switch strings.ToLower(strings.TrimSpace(hdr["content-transfer-encoding"])) {
	case "quoted-printable":
		return decodeQP(body)
	case "base64":
		return decodeBase64(body)
	}
	return body
}

// decodeQP decodes quoted-printable leniently: =XX is the byte XX, = at the
// end of a line (blanks allowed after it) joins the lines, and any other = is
// kept.
func decodeQP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '=' {
			out = append(out, c)
			continue
		}
		if i+2 < len(b) && isHex(b[i+1]) && isHex(b[i+2]) {
			out = append(out, unhex(b[i+1])<<4|unhex(b[i+2]))
			i += 2
			continue
		}
		j := i + 1
		for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
			j++
		}
		switch {
		case j == len(b):
			i = j - 1
		case b[j] == '\n':
			i = j
		case b[j] == '\r' && j+1 < len(b) && b[j+1] == '\n':
			i = j + 1
		default:
			out = append(out, '=')
		}
	}
	return out
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// decodeBase64 decodes base64 leniently: characters outside the alphabet
// are skipped, decoding stops at the first =, and a dangling last character
// is dropped.
func decodeBase64(b []byte) []byte {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		if c == '=' {
			break
		}
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' {
			clean = append(clean, c)
		}
	}
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1]
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, _ := base64.RawStdEncoding.Decode(out, clean) // cannot fail on the alphabet
	return out[:n]
}

// toUTF8 converts text in the given charset to UTF-8 by EmailText's rule.
func toUTF8(b []byte, charset string) string {
	label := normLabel(charset)
	if enc, err := htmlindex.Get(label); err == nil && label != "" {
		name, _ := htmlindex.Name(enc)
		if name != "utf-8" && name != "windows-1252" && name != "replacement" {
			if s, err := enc.NewDecoder().Bytes(b); err == nil {
				return strings.ToValidUTF8(string(s), "\uFFFD")
			}
		}
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return decodeWith(charmap.Windows1252, b)
}

func decodeWith(enc encoding.Encoding, b []byte) string {
	s, err := enc.NewDecoder().Bytes(b)
	if err != nil {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return strings.ToValidUTF8(string(s), "\uFFFD")
}

// blockTags are the HTML elements whose start or end breaks the line.
var blockTags = map[string]bool{
	"br": true, "p": true, "div": true, "tr": true, "li": true, "ul": true, "ol": true,
	"h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "table": true,
	"hr": true, "blockquote": true, "pre": true, "title": true, "dd": true, "dt": true,
	"center": true, "form": true, "body": true, "html": true,
}

// htmlText converts HTML to text: comments, <script>, <style> and <head>
// (title included; an unclosed head ends at <body>) are removed with their
// content (an unclosed script or style removes the rest); block elements
// (p, div, br, tr, li, headings, …) break the line, once where several meet;
// table cells (td, th) are separated by a blank; other tags vanish, so markup
// inside a word leaves the word whole. Runs of white space in the text become
// one blank, and character references (&amp;, &#233;, …) are decoded. A <
// that does not start a tag (not followed by a letter, /, ! or ?) is text.
func htmlText(s string) string {
	var b strings.Builder
	space := false // a blank is pending
	emit := func(t string) {
		t = html.UnescapeString(t)
		for _, r := range t {
			if unicode.IsSpace(r) && r != '\u00a0' {
				space = true
				continue
			}
			if space && b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(r)
		}
	}
	newline := func() { // one line break however many block edges meet
		space = false
		if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
			b.WriteByte('\n')
		}
	}
	lower := asciiLower(s) // same byte offsets as s
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], '<')
		if j < 0 {
			emit(s[i:])
			break
		}
		emit(s[i : i+j])
		i += j
		if i+1 >= len(s) || !(isLetter(s[i+1]) || s[i+1] == '/' || s[i+1] == '!' || s[i+1] == '?') {
			emit("<")
			i++
			continue
		}
		if strings.HasPrefix(s[i:], "<!--") {
			end := strings.Index(s[i+4:], "-->")
			if end < 0 {
				break
			}
			i += 4 + end + 3
			continue
		}
		end := strings.IndexByte(s[i:], '>')
		if end < 0 {
			break // an unclosed tag ends the text
		}
		tag := lower[i+1 : i+end]
		closing := strings.HasPrefix(tag, "/")
		name := strings.TrimPrefix(tag, "/")
		for k := 0; k < len(name); k++ {
			if c := name[k]; !(isLetter(c) || '0' <= c && c <= '9') {
				name = name[:k]
				break
			}
		}
		i += end + 1
		switch {
		case !closing && (name == "script" || name == "style" || name == "head"):
			k := strings.Index(lower[i:], "</"+name)
			if name == "head" {
				if bd := strings.Index(lower[i:], "<body"); bd >= 0 && (k < 0 || bd < k) {
					i += bd // an unclosed head ends where the body starts
					break
				}
				if k < 0 {
					break // no end in sight: drop the tag only
				}
			}
			if k < 0 {
				i = len(s)
				break
			}
			i += k
			if e := strings.IndexByte(s[i:], '>'); e >= 0 {
				i += e + 1
			} else {
				i = len(s)
			}
			newline()
		case blockTags[name]:
			newline()
		case name == "td" || name == "th":
			space = true
		}
	}
	return b.String()
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// asciiLower lowercases the ASCII letters of s only, keeping every byte
// offset.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// tidyText normalizes extracted text: \n line ends, control characters other
// than \n and \t removed, trailing blanks of each line dropped, runs of empty
// lines cut to one, and leading and trailing white space trimmed.
func tidyText(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || !unicode.IsControl(r) {
			return r
		}
		return -1
	}, s)
	lines := strings.Split(s, "\n")
	out := lines[:0]
	empty := 0
	for _, l := range lines {
		l = strings.TrimRightFunc(l, unicode.IsSpace)
		if l == "" {
			empty++
			if empty > 1 {
				continue
			}
		} else {
			empty = 0
		}
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}
