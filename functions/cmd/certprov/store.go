package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/progress"
	"github.com/chromeos-certprov/adapter/shared/store"
	"github.com/chromeos-certprov/adapter/shared/store/firestore"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/memory"
)

// progressReader is what the reading commands need of the progress store.
type progressReader interface {
	Get(ctx context.Context, key string) (*progress.Record, error)
	ByProcessID(ctx context.Context, processID string, limit int) ([]*progress.Record, error)
	List(ctx context.Context, f store.Filter, limit int) ([]*progress.Record, error)
}

// storeFlags are where the progress records are: the same environment
// variables as the functions, overridden by flags.
type storeFlags struct {
	project, database, collection *string
	timeout                       *time.Duration
	// records is a local run's records file (local -keep); nil for the
	// actions, which act through the functions' queues and the API.
	records *string
}

func addStoreFlags(fs *flag.FlagSet, e env) storeFlags {
	get := func(name string) string {
		v, _ := e.lookup(name)
		return cmp.Or(v, config.Default(name))
	}
	return storeFlags{
		project:    fs.String("project", get("GOOGLE_CLOUD_PROJECT"), "project of Firestore (default $GOOGLE_CLOUD_PROJECT)"),
		database:   fs.String("database", get("FIRESTORE_DATABASE"), "Firestore database id (default $FIRESTORE_DATABASE)"),
		collection: fs.String("collection", get("FIRESTORE_COLLECTION"), "collection of the progress documents (default $FIRESTORE_COLLECTION)"),
		timeout:    fs.Duration("timeout", 30*time.Second, "deadline of the whole command's reads"),
	}
}

// addReadFlags is addStoreFlags with --records, for the reading commands.
func addReadFlags(fs *flag.FlagSet, e env) storeFlags {
	f := addStoreFlags(fs, e)
	f.records = fs.String("records", "", "read the records a local run kept (go run ./functions/cmd/local -keep FILE) instead of Firestore")
	return f
}

// open opens the store: the records file of a local run with --records,
// otherwise Firestore (FIRESTORE_EMULATOR_HOST in the process environment
// sends the client library to the emulator).
func (f storeFlags) open(ctx context.Context) (progressReader, func(), error) {
	if f.records != nil && *f.records != "" {
		file, err := os.Open(*f.records)
		if err != nil {
			return nil, nil, fmt.Errorf("--records: %w", err)
		}
		defer file.Close()
		s, err := memory.Load(file)
		if err != nil {
			return nil, nil, fmt.Errorf("--records %s: %w", *f.records, err)
		}
		return s, func() {}, nil
	}
	return f.openStore(ctx)
}

// openStore opens the store for reading and writing (the actions).
func (f storeFlags) openStore(ctx context.Context) (*firestore.Store, func(), error) {
	if *f.project == "" {
		return nil, nil, errNoProject
	}
	c, err := firestore.Open(ctx, *f.project, *f.database)
	if err != nil {
		return nil, nil, err
	}
	return firestore.New(c, *f.collection), func() { c.Close() }, nil
}

var errNoProject = errors.New("no project: set --project or GOOGLE_CLOUD_PROJECT")

// storeFailure reports a failed read: exit 1 for not found, 2 without a
// project, 3 otherwise.
func storeFailure(e env, what string, err error) int {
	fmt.Fprintf(e.stderr, "certprov %s: %v\n", what, err)
	switch {
	case errors.Is(err, progress.ErrNotFound):
		return exitProblem
	case errors.Is(err, errNoProject):
		return exitUsage
	}
	return exitUnreachable
}

// findProcess reads the records of a process id, or of a customer:process key.
func findProcess(ctx context.Context, s progressReader, id string) ([]*progress.Record, error) {
	for i := range len(id) {
		if id[i] == ':' {
			r, err := s.Get(ctx, id)
			if err != nil {
				return nil, err
			}
			return []*progress.Record{r}, nil
		}
	}
	recs, err := s.ByProcessID(ctx, id, 10)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("process %s: %w", id, progress.ErrNotFound)
	}
	return recs, nil
}

// at returns t, or nil when it is zero (omitted from the output).
func at(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// span writes a duration rounded for a person.
func span(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}
