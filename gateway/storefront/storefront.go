package storefront

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"path"
	"sort"
)

//go:embed site
var site embed.FS

// CSP is the pages' Content-Security-Policy: scripts, styles, images and
// API calls from the gateway itself only (no inline script or style, no
// other site), no plugins, no <base>, no form posted anywhere (the pages'
// forms are submitted by script), and no framing.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// versionToken is what index.html writes where the assets' version goes.
const versionToken = "{{VERSION}}"

// AssetPrefix is the path below which the versioned assets are served.
const AssetPrefix = "/assets/"

// File is one response the storefront serves.
type File struct {
	Path        string // the URL path
	ContentType string
	Body        []byte
	// Immutable files have versioned paths: a client may keep them for a
	// year. The page itself is not, and is revalidated on every load.
	Immutable bool
}

// Files returns the storefront's responses, the page first, and the
// assets' version.
func Files() ([]File, string, error) {
	var names []string
	err := fs.WalkDir(site, "site", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && p != "site/index.html" {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	sort.Strings(names)
	sum := sha256.New()
	var assets []File
	for _, name := range names {
		b, err := site.ReadFile(name)
		if err != nil {
			return nil, "", err
		}
		rel := name[len("site/"):]
		fmt.Fprintf(sum, "%s\x00%d\x00", rel, len(b))
		sum.Write(b)
		assets = append(assets, File{Path: rel, ContentType: contentType(rel), Body: b, Immutable: true})
	}
	version := hex.EncodeToString(sum.Sum(nil))[:12]
	for i := range assets {
		assets[i].Path = AssetPrefix + version + "/" + assets[i].Path
	}
	index, err := site.ReadFile("site/index.html")
	if err != nil {
		return nil, "", err
	}
	if !bytes.Contains(index, []byte(versionToken)) {
		return nil, "", fmt.Errorf("site/index.html names no %s", versionToken)
	}
	page := File{Path: "/", ContentType: "text/html; charset=utf-8", Body: bytes.ReplaceAll(index, []byte(versionToken), []byte(version))}
	return append([]File{page}, assets...), version, nil
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}
