;; wat-minimal: a Sluice plugin written directly against the ABI.
;; At rcpt it refuses <blocked@example.com> with "550 5.7.1 blocked by
;; wat-minimal"; at data it adds the header "X-Wat: hello from wat".
(module
  ;; Host functions, imported from the module "sluice".
  (import "sluice" "get_prop" (func $get_prop (param i32 i32 i32) (result i32)))
  (import "sluice" "set_reply" (func $set_reply (param i32 i32 i32 i32 i32) (result i32)))
  (import "sluice" "add_header" (func $add_header (param i32 i32 i32 i32) (result i32)))
  (import "sluice" "log" (func $log (param i32 i32 i32)))

  ;; One page (64 KiB) of linear memory, exported as "memory".
  (memory (export "memory") 1)
  (data (i32.const 0) "X-Wat")                  ;; 5 bytes
  (data (i32.const 16) "hello from wat")        ;; 14 bytes
  (data (i32.const 32) "blocked@example.com")   ;; 19 bytes
  (data (i32.const 64) "5.7.1")                 ;; 5 bytes
  (data (i32.const 80) "blocked by wat-minimal") ;; 22 bytes
  (data (i32.const 112) "wat-minimal: refusing recipient") ;; 31 bytes
  ;; Bytes 256..511 are the receive buffer the guest passes to get_prop.

  ;; The ABI version this module was written for.
  (func (export "sluice_abi_version") (result i32) (i32.const 1))

  ;; The hooks it implements: bit 1<<3 (rcpt) | 1<<4 (data) = 24.
  (func (export "sluice_hooks") (result i32) (i32.const 24))

  ;; $eq compares n bytes at a and b.
  (func $eq (param $a i32) (param $b i32) (param $n i32) (result i32)
    (block $differ
      (loop $next
        (if (i32.eqz (local.get $n)) (then (return (i32.const 1))))
        (br_if $differ (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b))))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  ;; sluice_on_hook runs one hook and returns a verdict (0 continue, 2 reject).
  (func (export "sluice_on_hook") (param $hook i32) (result i32)
    (local $len i32)
    ;; rcpt (3): read the recipient (prop 7) into the buffer at 256, cap 256.
    ;; A longer recipient returns its length > 256 and writes nothing; it
    ;; cannot be the blocked address, so there is no need to retry larger.
    (if (i32.eq (local.get $hook) (i32.const 3))
      (then
        (local.set $len (call $get_prop (i32.const 7) (i32.const 256) (i32.const 256)))
        (if (i32.and
              (i32.eq (local.get $len) (i32.const 19))
              (call $eq (i32.const 256) (i32.const 32) (i32.const 19)))
          (then
            (call $log (i32.const 0) (i32.const 112) (i32.const 31))
            (drop (call $set_reply (i32.const 550) (i32.const 64) (i32.const 5) (i32.const 80) (i32.const 22)))
            (return (i32.const 2))))))
    ;; data (4): prepend "X-Wat: hello from wat".
    (if (i32.eq (local.get $hook) (i32.const 4))
      (then
        (drop (call $add_header (i32.const 0) (i32.const 5) (i32.const 16) (i32.const 14)))))
    (i32.const 0)))
