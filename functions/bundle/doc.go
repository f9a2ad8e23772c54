// Package bundle holds the test of the functions' deployable source: it renders
// the source bundle exactly as terraform/bundle.tf does (same file list from
// terraform/bundle/files.json, same generated root package, through
// shared/tooling/sourcebundle, which the cold-start measurement uses too),
// checks it against terraform's own rendering, then builds it the way the
// Cloud Functions Go buildpack does and checks that each entry point starts
// and is served. It has no code outside its tests.
package bundle
