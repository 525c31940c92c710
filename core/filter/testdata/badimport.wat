;; badimport.wat imports a function the host does not provide.
(module
  (import "env" "system" (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_hooks") (result i32) (i32.const 63))
  (func (export "sluice_on_hook") (param i32) (result i32) (i32.const 0)))
