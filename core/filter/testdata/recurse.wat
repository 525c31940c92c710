;; recurse.wat recurses without end at every hook.
(module
  (memory (export "memory") 1)
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_hooks") (result i32) (i32.const 63))
  (func $down (param $n i32) (result i32)
    (i32.add (call $down (i32.add (local.get $n) (i32.const 1))) (i32.const 1)))
  (func (export "sluice_on_hook") (param i32) (result i32) (call $down (i32.const 0))))
