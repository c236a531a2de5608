// compose-config loads a Compose file the way `docker compose config` does, with the
// Compose Specification's reference loader (compose-go): schema validation, interpolation
// from the environment and an .env file beside it, normalization, and the consistency
// checks (a depends_on on an undefined service, ...). It prints the project as JSON, or the
// loader's error and exit status 1. The static tests of docker-compose.yml use it
// (tests/unit/deploy); scripts/install_deploy_tools.sh builds it.
//
//	compose-config FILE
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-config FILE")
		os.Exit(2)
	}
	options, err := cli.NewProjectOptions(
		[]string{os.Args[1]},
		cli.WithOsEnv,
		cli.WithDotEnv,
		cli.WithInterpolation(true),
		cli.WithResolvedPaths(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		fail(err)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out, err := json.MarshalIndent(project, "", "  ")
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
