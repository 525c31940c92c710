;; nomemory.wat declares no memory: a plugin may have none.
(module
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_hooks") (result i32) (i32.const 63))
  (func (export "sluice_on_hook") (param i32) (result i32) (i32.const 0)))
