// Command firstparty is the seven first-party plugins in one module: dnsbl,
// greylist, headers, helo, ratelimit, sender-policy and spamscore. Each
// package registers itself by name (sdk.Plugin); the host runs the one the
// plugin's entry names (NAME, or the entry key of NAME.toml). `make
// plugins` (scripts/build-plugins.sh) builds it and installs a copy as each
// plugins/NAME/NAME.wasm: plugins loaded from the same bytes share one
// compiled copy of the code, so the seven take one Go runtime's machine
// code (about 16 MiB) instead of seven (RATIONALE.md, "One module for the
// first-party plugins"). Build it alone with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o firstparty.wasm .
package main

import (
	_ "github.com/sluice-mta/sluice/plugins/dnsbl"
	_ "github.com/sluice-mta/sluice/plugins/greylist"
	_ "github.com/sluice-mta/sluice/plugins/headers"
	_ "github.com/sluice-mta/sluice/plugins/helo"
	_ "github.com/sluice-mta/sluice/plugins/ratelimit"
	_ "github.com/sluice-mta/sluice/plugins/sender-policy"
	_ "github.com/sluice-mta/sluice/plugins/spamscore"
)

func main() {}
