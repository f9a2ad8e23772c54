// Package sourcebundle renders the functions' source bundle exactly as
// terraform/bundle.tf does, from the one list terraform/bundle/files.json, and
// writes the main the Cloud Functions Go buildpack generates for it. The
// bundle test (functions/bundle) checks this rendering against terraform's
// and builds it; the cold-start measurement (functions/cmd/coldstart) builds
// the same bytes, so what it measures is what terraform ships.
package sourcebundle

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// spec is terraform/bundle/files.json.
type spec struct {
	Include      []string `json:"include"`
	Exclude      []string `json:"exclude"`
	RootFile     string   `json:"root_file"`
	RootTemplate string   `json:"root_template"`
}

// Bundle is the rendered source bundle: repository files plus the generated
// root package file. Its JSON is what .ci/tofu.sh reads out of terraform.
type Bundle struct {
	Files       []string `json:"files"` // repository-relative, sorted
	RootFile    string   `json:"root_file"`
	RootContent string   `json:"root_content"`
}

// FindRoot returns the nearest directory at or above dir that has
// terraform/bundle/files.json: the repository root.
func FindRoot(dir string) (string, error) {
	for {
		if _, err := os.Stat(filepath.Join(dir, "terraform", "bundle", "files.json")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no terraform/bundle/files.json above the working directory: run from the repository")
		}
		dir = parent
	}
}

// loadSpec reads terraform/bundle/files.json under the repository root.
func loadSpec(root string) (spec, error) {
	var s spec
	raw, err := os.ReadFile(filepath.Join(root, "terraform", "bundle", "files.json"))
	if err != nil {
		return s, fmt.Errorf("read bundle spec: %w", err)
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, fmt.Errorf("parse bundle spec: %w", err)
	}
	if len(s.Include) == 0 || s.RootFile == "" || s.RootTemplate == "" {
		return s, errors.New("bundle spec: include, root_file and root_template are required")
	}
	return s, nil
}

// Render computes the repository's bundle as terraform/bundle.tf does, from
// its terraform/bundle/files.json: setsubtract(union of fileset(root,
// include), union of fileset(root, exclude)) plus templatefile(root_template,
// {module = <module path of go.mod>}).
func Render(root string) (Bundle, error) {
	s, err := loadSpec(root)
	if err != nil {
		return Bundle{}, err
	}
	files, err := Fileset(root, s.Include)
	if err != nil {
		return Bundle{}, err
	}
	var kept []string
	for _, f := range files {
		if !slices.ContainsFunc(s.Exclude, func(p string) bool { return Match(p, f) }) {
			kept = append(kept, f)
		}
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return Bundle{}, fmt.Errorf("read go.mod: %w", err)
	}
	mod, err := ModulePath(gomod)
	if err != nil {
		return Bundle{}, err
	}
	tmpl, err := os.ReadFile(filepath.Join(root, "terraform", "bundle", s.RootTemplate))
	if err != nil {
		return Bundle{}, fmt.Errorf("read root template: %w", err)
	}
	content, err := RenderTemplate(string(tmpl), map[string]string{"module": mod})
	if err != nil {
		return Bundle{}, err
	}
	if slices.Contains(kept, s.RootFile) {
		return Bundle{}, fmt.Errorf("generated root file %s would overwrite the repository's own", s.RootFile)
	}
	return Bundle{Files: kept, RootFile: s.RootFile, RootContent: content}, nil
}

// ModulePath extracts the module path the way bundle.tf does, with the same
// regular expression.
func ModulePath(gomod []byte) (string, error) {
	m := regexp.MustCompile(`(?m)^module[ \t]+(\S+)`).FindSubmatch(gomod)
	if m == nil {
		return "", errors.New("go.mod has no module line")
	}
	return string(m[1]), nil
}

// RenderTemplate substitutes ${name} like terraform's templatefile. It
// accepts only plain ${name} interpolations: any other template syntax would
// make the two renderings differ, so it is an error here.
func RenderTemplate(tmpl string, vars map[string]string) (string, error) {
	if strings.Contains(tmpl, "%{") {
		return "", errors.New("root template: %{ directives are not supported by this renderer")
	}
	var errs []error
	out := regexp.MustCompile(`\$\{([^}]*)\}`).ReplaceAllStringFunc(tmpl, func(m string) string {
		v, ok := vars[m[2:len(m)-1]]
		if !ok {
			errs = append(errs, fmt.Errorf("root template: unknown interpolation %s", m))
		}
		return v
	})
	return out, errors.Join(errs...)
}

// Fileset returns the regular files under root matching any pattern, sorted,
// with terraform's fileset() semantics (doublestar globs: * within a path
// segment, ** any number of segments, symlinks followed).
func Fileset(root string, patterns []string) ([]string, error) {
	seen := map[string]bool{}
	for _, p := range patterns {
		// Walk only below the pattern's literal leading directories.
		segs := strings.Split(p, "/")
		base := ""
		for _, s := range segs[:len(segs)-1] {
			if strings.ContainsAny(s, `*?[{\`) {
				break
			}
			base = path.Join(base, s)
		}
		start := filepath.Join(root, filepath.FromSlash(base))
		if _, err := os.Stat(start); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		err := filepath.WalkDir(start, func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, name)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			fi, err := os.Stat(name)
			if err != nil || !fi.Mode().IsRegular() {
				return err
			}
			if Match(p, rel) {
				seen[rel] = true
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("fileset %s: %w", p, err)
		}
	}
	files := make([]string, 0, len(seen))
	for f := range seen {
		files = append(files, f)
	}
	slices.Sort(files)
	return files, nil
}

// Match reports whether the slash-separated name matches the doublestar
// pattern: ** matches zero or more whole segments, other segments match as
// path.Match.
func Match(pattern, name string) bool {
	return matchSegs(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchSegs(pat, name []string) bool {
	if len(pat) == 0 {
		return len(name) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(name); i++ {
			if matchSegs(pat[1:], name[i:]) {
				return true
			}
		}
		return false
	}
	if len(name) == 0 {
		return false
	}
	ok, err := path.Match(pat[0], name[0])
	return err == nil && ok && matchSegs(pat[1:], name[1:])
}

// Zip writes the bundle as the archive provider's archive_file with source
// blocks does: entries sorted by name, created with zip.Writer.Create.
func (b Bundle) Zip(root string) ([]byte, error) {
	content := map[string][]byte{b.RootFile: []byte(b.RootContent)}
	for _, f := range b.Files {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		content[f] = data
	}
	names := make([]string, 0, len(content))
	for n := range content {
		names = append(names, n)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			return nil, fmt.Errorf("zip %s: %w", n, err)
		}
		if _, err := w.Write(content[n]); err != nil {
			return nil, fmt.Errorf("zip %s: %w", n, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("zip: %w", err)
	}
	return buf.Bytes(), nil
}

// Unzip extracts a bundle into dir, as Cloud Functions does before the build.
func Unzip(data []byte, dir string) error {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return fmt.Errorf("open zip: %w", err)
	}
	for _, f := range zr.File {
		dst := filepath.Join(dir, filepath.FromSlash(f.Name))
		if !strings.HasPrefix(dst, filepath.Clean(dir)+string(filepath.Separator)) {
			return fmt.Errorf("zip entry %q escapes the directory", f.Name)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("unzip %s: %w", f.Name, err)
		}
		r, err := f.Open()
		if err != nil {
			return fmt.Errorf("unzip %s: %w", f.Name, err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return fmt.Errorf("unzip %s: %w", f.Name, err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return fmt.Errorf("unzip %s: %w", f.Name, err)
		}
	}
	return nil
}

// Unpack renders the repository's bundle, zips it as terraform does and
// unzips it into dir, as Cloud Functions receives it. It returns the bundle.
func Unpack(root, dir string) (Bundle, error) {
	b, err := Render(root)
	if err != nil {
		return Bundle{}, err
	}
	zipped, err := b.Zip(root)
	if err != nil {
		return Bundle{}, err
	}
	return b, Unzip(zipped, dir)
}
