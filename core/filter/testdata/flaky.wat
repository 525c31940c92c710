;; flaky.wat traps at the mail hook and continues at every other.
(module
  (memory (export "memory") 1)
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_hooks") (result i32) (i32.const 63))
  (func (export "sluice_on_hook") (param $hook i32) (result i32)
    (if (i32.eq (local.get $hook) (i32.const 2)) (then unreachable))
    (i32.const 0)))
