;; verdict.wat returns the verdict named by the digit in its config key "v"
;; at every hook; when config key "code" is set (a 3-digit number) it first
;; calls set_reply with that code, the enhanced code in config "enh" (a
;; JSON string) and the text "go away". It also counts its calls in note
;; "calls" (one byte per call).
(module
  (import "sluice" "get_config" (func $get_config (param i32 i32 i32 i32) (result i32)))
  (import "sluice" "set_reply" (func $set_reply (param i32 i32 i32 i32 i32) (result i32)))
  (import "sluice" "get_note" (func $get_note (param i32 i32 i32 i32) (result i32)))
  (import "sluice" "set_note" (func $set_note (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_hooks") (result i32) (i32.const 63))
  (data (i32.const 100) "v")
  (data (i32.const 104) "code")
  (data (i32.const 112) "enh")
  (data (i32.const 120) "go away")
  (data (i32.const 130) "calls")
  (func (export "sluice_on_hook") (param $h i32) (result i32)
    (local $n i32) (local $code i32) (local $v i32)
    ;; calls note: append "x"
    (local.set $n (call $get_note (i32.const 130) (i32.const 5) (i32.const 2000) (i32.const 1000)))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (local.set $n (i32.const 0))))
    (i32.store8 (i32.add (i32.const 2000) (local.get $n)) (i32.const 120))
    (drop (call $set_note (i32.const 130) (i32.const 5) (i32.const 2000) (i32.add (local.get $n) (i32.const 1))))
    (drop (call $get_config (i32.const 100) (i32.const 1) (i32.const 200) (i32.const 16)))
    (local.set $v (i32.sub (i32.load8_u (i32.const 200)) (i32.const 48)))
    (if (i32.eq (call $get_config (i32.const 104) (i32.const 4) (i32.const 300) (i32.const 16)) (i32.const 3))
      (then
        (local.set $code (i32.add (i32.add
          (i32.mul (i32.sub (i32.load8_u (i32.const 300)) (i32.const 48)) (i32.const 100))
          (i32.mul (i32.sub (i32.load8_u (i32.const 301)) (i32.const 48)) (i32.const 10)))
          (i32.sub (i32.load8_u (i32.const 302)) (i32.const 48))))
        (local.set $n (call $get_config (i32.const 112) (i32.const 3) (i32.const 400) (i32.const 16)))
        (if (i32.lt_s (local.get $n) (i32.const 2)) (then (local.set $n (i32.const 2))))
        (drop (call $set_reply (local.get $code) (i32.const 401) (i32.sub (local.get $n) (i32.const 2)) (i32.const 120) (i32.const 7)))))
    (local.get $v)))
