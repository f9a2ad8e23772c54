package firestore_test

import (
	"testing"

	"github.com/chromeos-certprov/adapter/shared/store/firestore"
	"github.com/chromeos-certprov/adapter/shared/tooling/store/storetest"
)

func TestListAndByProcessID(t *testing.T) {
	storetest.RunQueries(t, firestore.New(client(t), collection(t)))
}
