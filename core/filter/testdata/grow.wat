;; grow.wat grows its memory by 64 pages (4 MiB) at every hook and traps,
;; as Go's runtime does, when the grow fails.
(module
  (memory (export "memory") 1)
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_hooks") (result i32) (i32.const 63))
  (func (export "sluice_on_hook") (param i32) (result i32)
    (if (i32.eq (memory.grow (i32.const 64)) (i32.const -1)) (then unreachable))
    (i32.const 0)))
