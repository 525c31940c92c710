;; libc.wat: a C plugin linked with --allow-undefined against a libc the
;; host does not have (it imports env.memcpy): the host refuses it, saying
;; to build without libc.
(module
  (import "env" "memcpy" (func $memcpy (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_hooks") (result i32) (i32.const 0)))
