package data

import "errors"

func fetchForTest(name, dir string) error { return errors.New("data: Fetch is not available on js") }
