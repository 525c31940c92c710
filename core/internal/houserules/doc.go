// Package houserules turns the repository's dependency rules (DESIGN.md:
// "The house rules above are a test in the repository, not a hope") into a
// test over `go list -deps -test -json ./...`.
//
// A rule names the packages it applies to, which dependencies it forbids,
// and how it looks: at a package's direct imports (Imports) or at
// everything linked into it (Deps), and whether its _test files count.
// The rules, and why each is direct or transitive:
//
//   - pluginapi-stdlib: pluginapi links only the standard library (Deps).
//     It is the ABI contract compiled into every guest and the host. Its
//     external test compiles a guest with sdk/sdktest; test files are not
//     checked.
//   - sdk-guest: sdk and sdk/... (but sdk/sdktest) link only the standard
//     library, pluginapi and the SDK's own guest packages (Deps): they are
//     compiled into every Go plugin, so a forbidden package reached through
//     another one (sdk importing sdk/sdktest, say) counts too.
//   - sdktest-harness: sdk/sdktest is the exception. It runs a plugin in the
//     real host on the developer's machine, so it may import, directly,
//     the standard library, pluginapi, sdk/..., core/filter (the host),
//     core/mail (the host's vocabulary: replies, headers; standard library
//     only) and go-toml (to read the plugin's NAME.toml), and nothing else
//     of the core or other modules. What core/filter links (wazero, core/config)
//     comes with it by design, hence a direct rule.
//   - guest-sdk-only: plugins/..., examples/... and scripts/benchplugin
//     (the benchmark's guest) link only the standard library, pluginapi
//     and the SDK's guest packages (Deps), and plugins/... also other
//     plugins/... packages (a bundle, plugins/firstparty): that is what
//     ends up in the .wasm. Their _test files run natively on the host (sdk/sdktest, the
//     real server through core/servertest) and are not checked.
//   - core-no-guest-side: no core package links sdk/..., plugins/...,
//     examples/..., cmd/... or scripts/... (Deps). Core test files may import
//     sdk/sdktest to build the plugins they exercise, and none of the rest
//     (direct TestImports and XTestImports).
//   - delivery-no-queue: nothing under core/delivery links core/queue, even
//     through another package (Deps), and their test files do not import
//     it either: the transports speak core/mail, and the queue calls them.
//   - mail-stdlib: core/mail links only the standard library (Deps).
//   - wazero-in-filter: only core/filter (and packages under it) imports
//     github.com/tetratelabs/wazero/..., directly, test files included. The
//     rule is about who speaks wazero's API; every package that uses the
//     host links wazero through core/filter, which is the point.
//
// A transitive rule reports each forbidden package at the point where it
// enters: the chain goes through allowed packages only, so a message reads
// "plugins/x → sdk → example.com/y", not one line per package y drags in.
// Nor does it pass through another package the same rule applies to: that
// one reports the breach itself, once.
package houserules
