package adapter

// The CA connectors the adapter ships. Each registers its type with
// ca.Register from its init, so importing it here, and only here, is what
// makes its type buildable (ConnectorTypes, BuildCAs).
import (
	_ "github.com/chromeos-certprov/adapter/shared/ca/cas"
	_ "github.com/chromeos-certprov/adapter/shared/ca/devca"
	_ "github.com/chromeos-certprov/adapter/shared/ca/est"
	_ "github.com/chromeos-certprov/adapter/shared/ca/scep"
)
