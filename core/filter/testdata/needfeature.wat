;; needfeature.wat requires ABI feature bit 30, which no host defines.
(module
  (memory (export "memory") 1)
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_features") (param i32) (result i32) (i32.const 0x40000000))
  (func (export "sluice_hooks") (result i32) (i32.const 63))
  (func (export "sluice_on_hook") (param i32) (result i32) (i32.const 0)))
