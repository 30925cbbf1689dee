// Package storefront is Mercato's demo web shop: a small single-page
// application that uses nothing but the public API, served by the gateway
// at / beside the API (/api/v1) and its reference (/docs).
//
// Why here, and why so: the shop is a client of the gateway, not a service
// (it has no data and no logic of its own that the API lacks), so a service
// of its own registered in Consul would add a process, a port and a
// deployment for nothing but static files. The gateway already serves
// embedded files (the API reference) with a strict Content-Security-Policy;
// serving the shop the same way makes it same-origin with the API, so no
// CORS is needed and the policy can be connect-src 'self'. It is a package of
// the gateway module rather than a module of its own, so the Dockerfile, the
// workspace and `make` need nothing new.
//
// The pages are plain HTML, CSS and hand-written ES modules in site/ with no
// build step and no third-party code: nothing is fetched at run time and no
// CDN is used. Files returns what is served: "/" (site/index.html, revalidated
// on every load) and every other file of site/ under
// /assets/<version>/, where version is a hash of all of them, so they can be
// cached for a year; the modules import each other by relative paths, which
// stay inside the same version. The gateway's mountStorefront serves them
// (gzipped when the client takes it) with CSP.
//
// The pages use hash routes (#/product/<slug>, #/orders/<id>, ...), so the
// gateway serves only / and the versioned assets, and every other path
// stays 404 as before.
package storefront
