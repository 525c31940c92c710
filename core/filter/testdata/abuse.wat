;; abuse.wat is the hostile plugin of the abuse suite (abuse_test.go): the
;; first four bytes of the envelope sender choose what it does at the mail
;; hook; any other sender is served at once, at every hook.
;;
;;   loop  an infinite loop            tree  a loop-free call tree (2^40 calls)
;;   recu  unbounded recursion         grow  memory.grow until refused, forever
;;   tabl  table.grow by 50,000,000, forever
;;   logf  a log flood                 kvfl  a KV flood (64 KiB values)
;;   dnsb  a lookup of blackhole.test, whose server never answers
;;   verd  the verdict 99              code  set_reply(250) (must fail), then
;;                                           tempfail with set_reply(421)
;;   inje  CR/LF in every host call that takes text, at mail, rcpt and
;;         data, and a recipient added at a domain not ours for a client
;;         that may not relay: it rejects (554 "injection accepted") if
;;         any call took one
(module
  (import "sluice" "get_prop" (func $get_prop (param i32 i32 i32) (result i32)))
  (import "sluice" "set_reply" (func $set_reply (param i32 i32 i32 i32 i32) (result i32)))
  (import "sluice" "log" (func $log (param i32 i32 i32)))
  (import "sluice" "kv_set" (func $kv_set (param i32 i32 i32 i32 i64) (result i32)))
  (import "sluice" "dns_lookup" (func $dns (param i32 i32 i32 i32 i32) (result i32)))
  (import "sluice" "add_header" (func $add_header (param i32 i32 i32 i32) (result i32)))
  (import "sluice" "set_header" (func $set_header (param i32 i32 i32 i32) (result i32)))
  (import "sluice" "add_rcpt" (func $add_rcpt (param i32 i32) (result i32)))
  (import "sluice" "rewrite_rcpt" (func $rewrite_rcpt (param i32 i32 i32 i32) (result i32)))
  (import "sluice" "add_score" (func $add_score (param i32 i32 f64) (result i32)))
  (import "sluice" "metric_add" (func $metric_add (param i32 i32 f64) (result i32)))
  (memory (export "memory") 2)
  (table $t 1 funcref)
  (data (i32.const 0) "blackhole.test")
  (data (i32.const 32) "x\r\nX-Injected: yes")
  (data (i32.const 64) "X-Test")
  (data (i32.const 80) "a@example.test\r\nRCPT TO:<v@example.test>")
  (data (i32.const 128) "injection accepted")
  (data (i32.const 160) "2.0.0")
  (data (i32.const 168) "4.7.0")
  (data (i32.const 176) "bye")
  (data (i32.const 184) "ok")
  (data (i32.const 192) "sym\r\nX")
  (data (i32.const 200) "X-Bad\r\nName")
  (data (i32.const 224) "key-")
  (data (i32.const 288) "x@remote.example")
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_hooks") (result i32) (i32.const 63))

  (func $tree (param $d i32)
    (if (i32.gt_s (local.get $d) (i32.const 0))
      (then
        (call $tree (i32.sub (local.get $d) (i32.const 1)))
        (call $tree (i32.sub (local.get $d) (i32.const 1))))))
  (func $recurse (call $recurse))

  ;; $bad counts an accepted injection (a status >= 0).
  (global $bad (mut i32) (i32.const 0))
  (func $check (param $st i32)
    (if (i32.ge_s (local.get $st) (i32.const 0))
      (then (global.set $bad (i32.add (global.get $bad) (i32.const 1))))))

  (func (export "sluice_on_hook") (param $h i32) (result i32)
    (local $w i32) (local $i i32)
    (global.set $bad (i32.const 0))
    (if (i32.lt_s (call $get_prop (i32.const 6) (i32.const 1024) (i32.const 256)) (i32.const 4))
      (then (return (i32.const 0))))
    (local.set $w (i32.load (i32.const 1024)))
    (if (i32.eq (local.get $w) (i32.const 0x656a6e69)) ;; "inje"
      (then
        (if (i32.eq (local.get $h) (i32.const 2))
          (then
            (call $check (call $set_reply (i32.const 554) (i32.const 0) (i32.const 0) (i32.const 32) (i32.const 18)))
            (call $check (call $add_score (i32.const 192) (i32.const 6) (f64.const 1)))
            (call $check (call $metric_add (i32.const 192) (i32.const 6) (f64.const 1)))
            (call $check (call $dns (i32.const 1) (i32.const 32) (i32.const 18) (i32.const 4096) (i32.const 1024)))))
        (if (i32.eq (local.get $h) (i32.const 3))
          (then
            (call $check (call $add_rcpt (i32.const 80) (i32.const 41)))
            ;; well formed, but not ours, and the client may not relay
            (call $check (call $add_rcpt (i32.const 288) (i32.const 16)))
            (call $check (call $rewrite_rcpt (i32.const 80) (i32.const 14) (i32.const 80) (i32.const 41)))))
        (if (i32.eq (local.get $h) (i32.const 4))
          (then
            (call $check (call $add_header (i32.const 64) (i32.const 6) (i32.const 32) (i32.const 18)))
            (call $check (call $set_header (i32.const 64) (i32.const 6) (i32.const 32) (i32.const 18)))
            (call $check (call $add_header (i32.const 200) (i32.const 11) (i32.const 184) (i32.const 2)))))
        (if (global.get $bad)
          (then
            (drop (call $set_reply (i32.const 554) (i32.const 0) (i32.const 0) (i32.const 128) (i32.const 18)))
            (return (i32.const 2))))
        (return (i32.const 0))))
    (if (i32.ne (local.get $h) (i32.const 2)) (then (return (i32.const 0))))
    (if (i32.eq (local.get $w) (i32.const 0x706f6f6c)) ;; "loop"
      (then (loop $l (br $l))))
    (if (i32.eq (local.get $w) (i32.const 0x65657274)) ;; "tree"
      (then (call $tree (i32.const 40)) (return (i32.const 0))))
    (if (i32.eq (local.get $w) (i32.const 0x75636572)) ;; "recu"
      (then (call $recurse)))
    (if (i32.eq (local.get $w) (i32.const 0x776f7267)) ;; "grow"
      (then (loop $l (drop (memory.grow (i32.const 16))) (br $l))))
    (if (i32.eq (local.get $w) (i32.const 0x6c626174)) ;; "tabl"
      (then (loop $l (drop (table.grow $t (ref.null func) (i32.const 50000000))) (br $l))))
    (if (i32.eq (local.get $w) (i32.const 0x66676f6c)) ;; "logf"
      (then (loop $l (call $log (i32.const 0) (i32.const 4096) (i32.const 1000)) (br $l))))
    (if (i32.eq (local.get $w) (i32.const 0x6c66766b)) ;; "kvfl"
      (then
        (loop $l
          (i32.store (i32.const 228) (local.get $i))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (drop (call $kv_set (i32.const 224) (i32.const 8) (i32.const 4096) (i32.const 65536) (i64.const 0)))
          (br $l))))
    (if (i32.eq (local.get $w) (i32.const 0x62736e64)) ;; "dnsb"
      (then
        (drop (call $dns (i32.const 1) (i32.const 0) (i32.const 14) (i32.const 4096) (i32.const 1024)))
        (return (i32.const 0))))
    (if (i32.eq (local.get $w) (i32.const 0x64726576)) ;; "verd"
      (then (return (i32.const 99))))
    (if (i32.eq (local.get $w) (i32.const 0x65646f63)) ;; "code"
      (then
        (if (i32.ge_s (call $set_reply (i32.const 250) (i32.const 160) (i32.const 5) (i32.const 184) (i32.const 2)) (i32.const 0))
          (then (return (i32.const 2))))
        (drop (call $set_reply (i32.const 421) (i32.const 168) (i32.const 5) (i32.const 176) (i32.const 3)))
        (return (i32.const 3))))
    (i32.const 0)))
