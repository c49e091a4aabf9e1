package data

import "errors"

// readSpamAssassin is not built on js: parsing e-mails needs the charset
// tables of golang.org/x/text, which the browser's bundle does without.
func readSpamAssassin(string) ([]Sentence, error) {
	return nil, errors.New("data: the SpamAssassin e-mails are not read on js")
}
