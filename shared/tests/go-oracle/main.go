// Command template-oracle renders a corpus of templates with Go's own
// text/template, the reference ferry's template engine is compared with
// (shared/tests/template_go_oracle.rs).
//
// Usage: template-oracle CORPUS_DIR
//
// A case is CORPUS_DIR/NAME.tmpl (the template text, byte for byte) and an
// optional CORPUS_DIR/NAME.json (a JSON object of strings: the data). The
// data is a map[string]string, as sealos passes its env
// (RenderTemplatesWithEnv), and the template is created with
// Option("missingkey=default") as sealos does. Standard library only: no
// sprig, so the corpus uses Go's built-in functions only.
//
// Case names start with what they cover: lex- (strings, characters,
// delimiters), num- (number constants), fn- (built-in functions), ctl-
// (actions, data, control flow); known- cases are the differences ferry
// documents, which the Rust test expects to still differ.
//
// For every case, sorted by name, one line is printed:
//
//	NAME<TAB>ok<TAB>HEX(output)
//	NAME<TAB>parse<TAB>HEX(error text)
//	NAME<TAB>exec<TAB>HEX(error text)
//
// Hex keeps the output bytes exact (Go strings may hold invalid UTF-8).
// The corpus uses Go 1.23 syntax ({{else with}}), hence go.mod's go line.
package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: template-oracle CORPUS_DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "template-oracle:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".tmpl"); ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		status, out, err := render(dir, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Printf("%s\t%s\t%s\n", name, status, hex.EncodeToString(out))
	}
	return nil
}

// render returns the status (ok, parse, exec) and the output or error text;
// err is set only when the case itself cannot be read.
func render(dir, name string) (string, []byte, error) {
	text, err := os.ReadFile(filepath.Join(dir, name+".tmpl"))
	if err != nil {
		return "", nil, err
	}
	data := map[string]string{}
	raw, err := os.ReadFile(filepath.Join(dir, name+".json"))
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &data); err != nil {
			return "", nil, err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", nil, err
	}
	tmpl, err := template.New(name).Option("missingkey=default").Parse(string(text))
	if err != nil {
		return "parse", []byte(err.Error()), nil
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		return "exec", []byte(err.Error()), nil
	}
	return "ok", buf.Bytes(), nil
}
