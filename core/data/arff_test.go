package data

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const arffHead = "@relation 'Reuters-21578 Grain'\n\n@attribute Text string\n@attribute class-att {0,1}\n\n@data\n\n"

func TestReadTextARFF(t *testing.T) {
	in := "% a comment\n" + arffHead +
		`'BAHIA COCOA REVIEW Showers\ncontinued; it\'s dry, \"very\" dry \\ 100\% &lt;',0` + "\n" +
		"% another\n" +
		`"double quoted, with comma",1` + "\n" +
		`  'tab\tand \u00e9 and \ud83d\ude00' , 1 ` + "\n" +
		"bare,0\n" +
		"'',1\n"
	ss, classes, err := ReadTextARFF(strings.NewReader(in), "t.arff")
	if err != nil {
		t.Fatal(err)
	}
	want := []Sentence{
		{"BAHIA COCOA REVIEW Showers\ncontinued; it's dry, \"very\" dry \\ 100% &lt;", 0},
		{"double quoted, with comma", 1},
		{"tab\tand é and 😀", 1},
		{"bare", 0},
		{"", 1},
	}
	if !reflect.DeepEqual(ss, want) || !reflect.DeepEqual(classes, []string{"0", "1"}) {
		t.Errorf("got %+v %v", ss, classes)
	}
	// The class may come first and have names.
	ss, classes, err = ReadTextARFF(strings.NewReader("@RELATION r\n@ATTRIBUTE topic {earn, grain, 'crude oil'}\n@ATTRIBUTE 'the text' STRING\n@DATA\n'crude oil','x'\ngrain,y\n"), "t")
	if err != nil || !reflect.DeepEqual(ss, []Sentence{{"x", 2}, {"y", 1}}) || !reflect.DeepEqual(classes, []string{"earn", "grain", "crude oil"}) {
		t.Errorf("got %+v %v %v", ss, classes, err)
	}
}

func TestReadTextARFFErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "t:1: no @data section"},
		{"@relation r\n@attribute t string\n@data\n", "t:3: @data before a @relation, one string and one nominal attribute"},
		{"@relation r\n@attribute t string\n@attribute n numeric\n", `t:3: attribute "n" of type "numeric"`},
		{"@relation r\n@attribute t string\n@attribute u string\n", `t:3: a second string attribute "u"`},
		{"@relation r\n@attribute c {a,a}\n", `t:2: attribute "c": empty or repeated class "a"`},
		{"@relation r\n@attribute c {a}\n", `t:2: attribute "c": 1 classes, want at least 2`},
		{"@relation r\n@frobnicate\n", `t:2: unexpected "@frobnicate" in the header`},
		{arffHead + "'text',2\n", "t:8: class \"2\" is not one of [0 1]"},
		{arffHead + "'text'\n", "t:8: 1 values, want 2"},
		{arffHead + "'text',0,1\n", "t:8: 3 values, want 2"},
		{arffHead + "?,0\n", "t:8: missing value in field 1"},
		{arffHead + "'unterminated,0\n", "t:8: unterminated quoted value"},
		{arffHead + "'a' 'b',0\n", `t:8: want a comma after value 1, got "'b',0"`},
		{arffHead + `'a\`, "t:8: a backslash ends the line"},
		{arffHead + `'\u12',0`, `t:8: \u not followed by four hex digits`},
		{arffHead + "{0 'x', 1 0}\n", "t:8: sparse rows are not supported"},
		{arffHead + "'caf\xe9',0\n", "t:8: invalid UTF-8"},
		{arffHead + "'" + strings.Repeat("x", MaxARFFLine) + "',0\n", "t:8: line longer than"},
	} {
		_, _, err := ReadTextARFF(strings.NewReader(c.in), "t")
		var fe *FormatError
		if !errors.As(err, &fe) || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%.40q: got %v, want %s", c.in, err, c.want)
		}
	}
}

func FuzzTextARFF(f *testing.F) {
	f.Add([]byte(arffHead + "'a\\nb',0\n\"c\",1\n"))
	f.Add([]byte("@relation r\n@attribute c {x,'y z'}\n@attribute t string\n@data\n'y z','\\u00e9'\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ss, classes, err := ReadTextARFF(strings.NewReader(string(b)), "fuzz")
		if err != nil {
			checkErr(t, err)
			return
		}
		for _, s := range ss {
			if s.Class < 0 || s.Class >= len(classes) {
				t.Fatalf("class %d of %d", s.Class, len(classes))
			}
		}
	})
}
