;; flood.wat floods the host at every hook: 1,000 log lines of 1,000 bytes,
;; 1,000 lines of 100 bytes on stdout, and 100 kv_set of 64 KiB under
;; distinct keys. It keeps the first status kv_set refused with in note
;; "kv" (4 bytes, little endian) and how many kv_set succeeded in note "ok".
(module
  (import "sluice" "log" (func $log (param i32 i32 i32)))
  (import "sluice" "kv_set" (func $kv_set (param i32 i32 i32 i32 i64) (result i32)))
  (import "sluice" "set_note" (func $set_note (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "kv")
  (data (i32.const 8) "ok")
  (data (i32.const 16) "key-0")
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_hooks") (result i32) (i32.const 63))
  (func (export "sluice_on_hook") (param i32) (result i32)
    (local $i i32) (local $st i32) (local $ok i32) (local $first i32)
    ;; bytes 1024..2023 are 'x', byte 2023 a newline for stdout
    (memory.fill (i32.const 1024) (i32.const 120) (i32.const 1000))
    (i32.store8 (i32.const 1123) (i32.const 10))
    ;; iovec at 64: (1024, 100)
    (i32.store (i32.const 64) (i32.const 1024))
    (i32.store (i32.const 68) (i32.const 100))
    (local.set $i (i32.const 0))
    (loop $logs
      (call $log (i32.const 0) (i32.const 1024) (i32.const 1000))
      (drop (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 72)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $logs (i32.lt_u (local.get $i) (i32.const 1000))))
    (local.set $i (i32.const 0))
    (loop $kvs
      (i32.store8 (i32.const 20) (i32.add (i32.const 48) (i32.rem_u (local.get $i) (i32.const 10))))
      (i32.store8 (i32.const 19) (i32.add (i32.const 48) (i32.div_u (local.get $i) (i32.const 10))))
      (local.set $st (call $kv_set (i32.const 16) (i32.const 5) (i32.const 65536) (i32.const 65536) (i64.const 0)))
      (if (i32.eqz (local.get $st))
        (then (local.set $ok (i32.add (local.get $ok) (i32.const 1))))
        (else (if (i32.eqz (local.get $first)) (then (local.set $first (local.get $st))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $kvs (i32.lt_u (local.get $i) (i32.const 100))))
    (i32.store (i32.const 32) (local.get $first))
    (drop (call $set_note (i32.const 0) (i32.const 2) (i32.const 32) (i32.const 4)))
    (i32.store (i32.const 36) (local.get $ok))
    (drop (call $set_note (i32.const 8) (i32.const 2) (i32.const 36) (i32.const 4)))
    (i32.const 0)))
