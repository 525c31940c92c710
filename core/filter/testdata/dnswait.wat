;; dnswait.wat looks up the A record of "blackhole.test" at every hook and
;; continues whatever the answer; at data it traps instead when the lookup
;; was not a temporary failure (-5).
(module
  (import "sluice" "dns_lookup" (func $dns (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "blackhole.test")
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_hooks") (result i32) (i32.const 63))
  (func (export "sluice_on_hook") (param $hook i32) (result i32)
    (local $st i32)
    (local.set $st (call $dns (i32.const 1) (i32.const 0) (i32.const 14) (i32.const 1024) (i32.const 1024)))
    (if (i32.and (i32.eq (local.get $hook) (i32.const 4)) (i32.ne (local.get $st) (i32.const -5)))
      (then unreachable))
    (i32.const 0)))
