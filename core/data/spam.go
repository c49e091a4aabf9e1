//go:build !js

package data

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// readSpamAssassin reads the e-mails of the npm tarball at tgz: the files
// package/data/GROUP/NAME.txt of the groups spamGroups, by group and name,
// each reduced to its text by EmailText.
func readSpamAssassin(tgz string) ([]Sentence, error) {
	f, err := os.Open(tgz)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, &FormatError{File: tgz, Msg: "bad gzip header", Err: err}
	}
	type mail struct {
		group, name string
		class       int
		text        string
	}
	var mails []mail
	group := map[string]int{}
	for i, g := range spamGroups {
		group[g] = i
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			return nil, &FormatError{File: tgz, Gzip: true, Msg: "tar", Err: err}
		}
		parts := strings.Split(h.Name, "/") // package/data/GROUP/NAME.txt
		if h.Typeflag != tar.TypeReg || len(parts) != 4 || parts[0] != "package" || parts[1] != "data" || path.Ext(parts[3]) != ".txt" {
			continue
		}
		g, ok := group[parts[2]]
		if !ok {
			continue
		}
		file := parts[3]
		if h.Size > 16<<20 {
			return nil, &FormatError{File: tgz, Gzip: true, Msg: fmt.Sprintf("%s: %d bytes, over 16 MiB", h.Name, h.Size)}
		}
		raw, err := io.ReadAll(tr)
		if err != nil {
			return nil, &FormatError{File: tgz, Gzip: true, Msg: h.Name, Err: err}
		}
		mails = append(mails, mail{spamGroups[g], file, g / 3, EmailText(raw)})
	}
	if len(mails) != SpamAssassinSize {
		return nil, &FormatError{File: tgz, Gzip: true, Msg: fmt.Sprintf("%d e-mails, want %d", len(mails), SpamAssassinSize)}
	}
	sort.Slice(mails, func(i, j int) bool {
		if mails[i].group != mails[j].group {
			return group[mails[i].group] < group[mails[j].group]
		}
		return mails[i].name < mails[j].name
	})
	out := make([]Sentence, len(mails))
	for i, m := range mails {
		out[i] = Sentence{Text: m.text, Class: m.class}
	}
	return out, nil
}
