package firestore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	gfs "cloud.google.com/go/firestore"

	"github.com/chromeos-certprov/adapter/shared/store/firestore"
	"github.com/chromeos-certprov/adapter/shared/store/storetest"
	"github.com/chromeos-certprov/adapter/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var n atomic.Int64

func TestConformance(t *testing.T) {
	addr := testenv.Firestore(t)
	t.Setenv("FIRESTORE_EMULATOR_HOST", addr)
	client, err := gfs.NewClient(context.Background(), "certprov-storetest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	storetest.Run(t, func(*testing.T) storetest.Store {
		return firestore.New(client, fmt.Sprintf("conformance%d", n.Add(1)))
	})
}
