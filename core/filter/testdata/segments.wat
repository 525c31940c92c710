;; segments.wat has data segments the way Go's linker writes them: out of
;; order, a few bytes apart, with runs of zeros left out, for FuzzRewrite
;; to seed the joining of segments (wasmdata.go) with.
(module
  (memory (export "memory") 1)
  (data (i32.const 300) "late")
  (data (i32.const 100) "abc")
  (data (i32.const 103) "def")
  (data (i32.const 140) "after a gap")
  (data (i32.const 4000) "far away")
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_hooks") (result i32) (i32.const 0)))
