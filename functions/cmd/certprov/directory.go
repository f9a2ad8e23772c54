package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/chromeos-certprov/adapter/shared/config"
	"github.com/chromeos-certprov/adapter/shared/directory"
	"github.com/chromeos-certprov/adapter/shared/profile"
)

// directoryValues are the directory variables' values given to "render" with
// --directory NAME=VALUE: render reads no directory, so that it works
// offline; the functions read the Directory API.
type directoryValues map[string]string

func (d directoryValues) String() string {
	names := make([]string, 0, len(d))
	for n := range d {
		names = append(names, n+"="+d[n])
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

// Set takes NAME=VALUE; a custom schema field's NAME is
// USER_CUSTOM:Schema.field.
func (d directoryValues) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || !profile.IsDirectoryVariable(name) {
		return fmt.Errorf("%q: want NAME=VALUE with NAME a directory variable (DEVICE_ASSET_ID, DEVICE_ANNOTATED_LOCATION, DEVICE_ANNOTATED_USER, DEVICE_ORG_UNIT_PATH, USER_ORG_UNIT_PATH, USER_EMPLOYEE_ID, USER_CUSTOM:Schema.field)", s)
	}
	d[name] = value
	return nil
}

// Device and User answer the pipeline's look-ups from the given values (an
// attribute not given is empty).
func (d directoryValues) Device(context.Context, string, string) (*directory.Device, error) {
	return &directory.Device{AssetID: d[profile.VarDeviceAssetID], Location: d[profile.VarDeviceAnnotatedLocation],
		AnnotatedUser: d[profile.VarDeviceAnnotatedUser], OrgUnitPath: d[profile.VarDeviceOrgUnitPath]}, nil
}

func (d directoryValues) User(_ context.Context, _ string, custom []string) (*directory.User, error) {
	u := &directory.User{OrgUnitPath: d[profile.VarUserOrgUnitPath], EmployeeID: d[profile.VarUserEmployeeID], Custom: map[string]string{}}
	for _, sf := range custom {
		u.Custom[sf] = d[profile.UserCustomVar(sf)]
	}
	return u, nil
}

// directoryNotes says which profiles read the Directory API, and what the
// functions then need.
func directoryNotes(a config.Adapter) []string {
	var refs []string
	for ref, p := range a.Profiles {
		if p.Needs().Any() {
			refs = append(refs, ref)
		}
	}
	if len(refs) == 0 {
		return nil
	}
	slices.Sort(refs)
	return []string{fmt.Sprintf("profiles %s use directory variables: ClaimProcess and PollSignature need Directory API read access (an admin role with the device and user read privileges, or domain-wide delegation with DIRECTORY_SUBJECT; README, Directory variables)", strings.Join(refs, ", "))}
}
