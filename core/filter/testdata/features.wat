;; features.wat requires ABI feature init (bit 0) through sluice_features and
;; keeps the host's features it was given; at mail it writes them (i32,
;; little-endian) to note "host_features".
(module
  (import "sluice" "set_note" (func $set_note (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $host (mut i32) (i32.const -1))
  (data (i32.const 100) "host_features")
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_features") (param $host i32) (result i32)
    (global.set $host (local.get $host))
    (i32.const 1))
  (func (export "sluice_init") (result i32) (i32.const 0))
  (func (export "sluice_hooks") (result i32) (i32.const 4))
  (func (export "sluice_on_hook") (param i32) (result i32)
    (i32.store (i32.const 200) (global.get $host))
    (drop (call $set_note (i32.const 100) (i32.const 13) (i32.const 200) (i32.const 4)))
    (i32.const 0)))
