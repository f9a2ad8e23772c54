package adapter

import (
	"context"
	"sync"

	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/directory"
)

// lazyDirectory builds the Directory API client at its first use, so that a
// deployment whose profiles use no directory variable never builds it (nor
// needs its credentials). A failed build is retried at the next use.
type lazyDirectory struct {
	opts directory.Options

	mu     sync.Mutex
	client *directory.Client
}

// directoryClient is the Directory API client of cfg: the API emulator's
// Directory endpoints when CERTPROV_API_EMULATOR_HOST is set, else the real
// API with the read-only scopes, as DIRECTORY_SUBJECT through domain-wide
// delegation when it is set.
func directoryClient(cfg *config.Config) *lazyDirectory {
	if cfg.Emulated {
		return &lazyDirectory{opts: directory.Options{EmulatorHost: cfg.APIEmulatorHost}}
	}
	return &lazyDirectory{opts: directory.Options{Subject: cfg.DirectorySubject}}
}

func (l *lazyDirectory) get(ctx context.Context) (*directory.Client, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.client == nil {
		c, err := directory.New(context.WithoutCancel(ctx), l.opts)
		if err != nil {
			return nil, err
		}
		l.client = c
	}
	return l.client, nil
}

func (l *lazyDirectory) Device(ctx context.Context, customer, deviceID string) (*directory.Device, error) {
	c, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return c.Device(ctx, customer, deviceID)
}

func (l *lazyDirectory) User(ctx context.Context, userKey string, custom []string) (*directory.User, error) {
	c, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return c.User(ctx, userKey, custom)
}

func (l *lazyDirectory) DeviceStatus(ctx context.Context, customer, deviceID string) (string, error) {
	c, err := l.get(ctx)
	if err != nil {
		return "", err
	}
	return c.DeviceStatus(ctx, customer, deviceID)
}

func (l *lazyDirectory) UserStatus(ctx context.Context, userKey string) (string, error) {
	c, err := l.get(ctx)
	if err != nil {
		return "", err
	}
	return c.UserStatus(ctx, userKey)
}
