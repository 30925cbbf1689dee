package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// QueriesFile is the file, under deploy/grafana, that lists every panel
// query with its variables filled in (CheckQueries).
const QueriesFile = "queries.json"

// Files renders the generated files, by path relative to deploy/grafana:
// dashboards/<uid>.json for each dashboard, and queries.json.
func Files(ds []Dashboard) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, d := range ds {
		b, err := JSON(d)
		if err != nil {
			return nil, err
		}
		files[filepath.Join("dashboards", d.UID+".json")] = b
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // PromQL's <, > and & as they are
	if err := enc.Encode(CheckQueries(ds)); err != nil {
		return nil, err
	}
	files[QueriesFile] = buf.Bytes()
	return files, nil
}

// Write writes Files(ds) under dir (deploy/grafana) and removes dashboard
// JSON files no dashboard makes any more. It returns the paths written.
func Write(dir string, ds []Dashboard) ([]string, error) {
	files, err := Files(ds)
	if err != nil {
		return nil, err
	}
	old, err := filepath.Glob(filepath.Join(dir, "dashboards", "*.json"))
	if err != nil {
		return nil, err
	}
	for _, path := range old {
		rel, _ := filepath.Rel(dir, path)
		if _, ok := files[rel]; !ok {
			if err := os.Remove(path); err != nil {
				return nil, err
			}
		}
	}
	var written []string
	for rel, b := range files {
		path := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil { //nolint:gosec // G301: a folder of the repository, readable as the rest of it
			return nil, err
		}
		if err := os.WriteFile(path, b, 0o644); err != nil { //nolint:gosec // G306: a committed file, nothing secret
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
		written = append(written, path)
	}
	return written, nil
}
