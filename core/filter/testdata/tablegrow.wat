;; tablegrow.wat grows its table: by 1,000 elements at rcpt, by 50,000,000
;; at data (tempfail when that grow fails, as it must). At every hook it
;; rejects when it finds its table grown already, which only a reused grown
;; instance could show.
(module
  (table $t 1 funcref)
  (memory (export "memory") 1)
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_hooks") (result i32) (i32.const 63))
  (func (export "sluice_on_hook") (param $hook i32) (result i32)
    (if (i32.ne (table.size $t) (i32.const 1)) (then (return (i32.const 2))))
    (if (i32.eq (local.get $hook) (i32.const 3))
      (then (drop (table.grow $t (ref.null func) (i32.const 1000)))))
    (if (i32.eq (local.get $hook) (i32.const 4))
      (then (if (i32.eq (table.grow $t (ref.null func) (i32.const 50000000)) (i32.const -1))
        (then (return (i32.const 3))))))
    (i32.const 0)))
