;; command.wat: a WASI command module (it exports _start, no _initialize)
;; with the Sluice exports: the host refuses it, saying to build a reactor.
(module
  (memory (export "memory") 1)
  (func (export "_start"))
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_hooks") (result i32) (i32.const 0)))
