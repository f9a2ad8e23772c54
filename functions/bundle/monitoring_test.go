package bundle

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chromeos-certprov/adapter/shared/pipeline"
)

// The alerts match the pipeline's log messages byte for byte: a renamed
// message would silently stop an alert.
func TestAlertsMatchTheLogMessages(t *testing.T) {
	t.Parallel()
	tf, err := os.ReadFile(filepath.Join(repoRoot(t), "terraform", "monitoring.tf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{pipeline.MsgFailureUnreported, pipeline.MsgOwnClaimRefused, pipeline.MsgIncompleteCertificate, pipeline.MsgDirectoryRefused} {
		// In HCL the message sits inside a filter string: quotes escaped.
		want := `jsonPayload.message=\"` + strings.Trim(strconv.Quote(msg), `"`) + `\"`
		if !strings.Contains(string(tf), want) {
			t.Errorf("terraform/monitoring.tf has no filter %s", want)
		}
	}
}
