package plugintool

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/sluice-mta/sluice/core/filter"
)

// Check validates the module at path (and its NAME.toml beside it, if any)
// as the host would load it, without running a hook, and prints what it
// found: ABI version, hooks, imports and declared limits.
func Check(ctx context.Context, w io.Writer, path string) error {
	info, err := filter.Check(ctx, path)
	if err != nil {
		return err
	}
	hooks := strings.Join(info.HookNames(), ", ")
	if hooks == "" {
		hooks = "(none: the plugin never runs)"
	}
	mem := fmt.Sprintf("%d pages (%d KiB) minimum", info.MemoryMinPages, info.MemoryMinPages*64)
	if info.MemoryMaxPages != 0 {
		mem += fmt.Sprintf(", %d pages maximum", info.MemoryMaxPages)
	}
	_, err = fmt.Fprintf(w, "%s: ok\n  abi version %d\n  hooks       %s\n  memory      %s\n  table       %d elements minimum\n  imports     %s\n",
		path, info.ABIVersion, hooks, mem, info.TableMin, strings.Join(info.Imports, "\n              "))
	return err
}
