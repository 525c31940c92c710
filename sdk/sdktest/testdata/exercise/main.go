// Command exercise builds sdk/internal/exercise as a plugin for the sdktest
// tests.
package main

import _ "github.com/sluice-mta/sluice/sdk/internal/exercise"

func main() {}
