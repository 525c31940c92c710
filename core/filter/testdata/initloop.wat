;; initloop.wat never finishes starting: its _initialize (a runtime's
;; start-up) spins until the host's init_timeout stops it.
(module
  (memory (export "memory") 1)
  (func (export "_initialize") (loop $spin (br $spin)))
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_features") (param i32) (result i32) (i32.const 0))
  (func (export "sluice_hooks") (result i32) (i32.const 63))
  (func (export "sluice_on_hook") (param i32) (result i32) (i32.const 0)))
