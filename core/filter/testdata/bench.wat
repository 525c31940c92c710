;; bench.wat is the benchmark guest: connect returns at once, rcpt reads
;; the recipient, data reads the whole body in 16 KiB chunks, deliver runs
;; an empty loop of 1,000,000 iterations (the cost of a deadline check).
(module
  (import "sluice" "get_prop" (func $get_prop (param i32 i32 i32) (result i32)))
  (import "sluice" "read_body" (func $read_body (param i64 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_hooks") (result i32) (i32.const 63))
  (func (export "sluice_on_hook") (param $h i32) (result i32)
    (local $off i64) (local $n i32)
    (if (i32.eq (local.get $h) (i32.const 3))
      (then (drop (call $get_prop (i32.const 7) (i32.const 1024) (i32.const 1024)))))
    (if (i32.eq (local.get $h) (i32.const 4))
      (then
        (block $done
          (loop $next
            (local.set $n (call $read_body (local.get $off) (i32.const 65536) (i32.const 16384)))
            (br_if $done (i32.le_s (local.get $n) (i32.const 0)))
            (local.set $off (i64.add (local.get $off) (i64.extend_i32_u (local.get $n))))
            (br $next)))))
    (if (i32.eq (local.get $h) (i32.const 5))
      (then
        (local.set $n (i32.const 1000000))
        (loop $spin
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (br_if $spin (local.get $n)))))
    (i32.const 0)))
