package config

// Default returns the declared default of the environment variable name
// ("" when it has none), so that tools reading the same variables (the
// operator CLI) default as the functions do.
func Default(name string) string {
	for _, s := range (&Config{}).settings() {
		if s.Name == name {
			return s.Default
		}
	}
	return ""
}
