//! rust-minimal: a Sluice plugin in Rust with no SDK and no standard
//! library. At rcpt it refuses <blocked@example.com> with
//! "550 5.7.1 blocked by rust-minimal"; at data it adds the header
//! "X-Rust: hello from rust". Build it with Debian's rustc and its wasm32
//! standard library (packages rustc and libstd-rust-dev-wasm32):
//!
//!   rustc --edition 2021 --crate-type cdylib --target wasm32-unknown-unknown \
//!       -O -o rust-minimal.wasm rust-minimal.rs
#![no_std]

// Host functions, imported from the module "sluice" (pluginapi/ABI.md).
#[link(wasm_import_module = "sluice")]
extern "C" {
    fn get_prop(prop: i32, buf: *mut u8, cap: i32) -> i32;
    fn set_reply(code: i32, enh: *const u8, enh_len: i32, text: *const u8, text_len: i32) -> i32;
    fn add_header(name: *const u8, name_len: i32, value: *const u8, value_len: i32) -> i32;
    fn log(level: i32, msg: *const u8, msg_len: i32);
}

const HOOK_RCPT: i32 = 3;
const HOOK_DATA: i32 = 4;
const PROP_RCPT: i32 = 7;
const CONTINUE: i32 = 0;
const REJECT: i32 = 2;

/// The receive buffer the guest owns (no allocator export is needed).
static mut BUF: [u8; 256] = [0; 256];

#[no_mangle]
pub extern "C" fn sluice_abi_version() -> i32 {
    1
}

#[no_mangle]
pub extern "C" fn sluice_hooks() -> i32 {
    1 << HOOK_RCPT | 1 << HOOK_DATA
}

fn reply(code: i32, enhanced: &[u8], text: &[u8]) {
    unsafe {
        set_reply(code, enhanced.as_ptr(), enhanced.len() as i32, text.as_ptr(), text.len() as i32);
    }
}

#[no_mangle]
pub extern "C" fn sluice_on_hook(hook: i32) -> i32 {
    let blocked: &[u8] = b"blocked@example.com";
    if hook == HOOK_RCPT {
        // A recipient longer than BUF returns its length and writes
        // nothing; it cannot be the blocked address.
        let n = unsafe { get_prop(PROP_RCPT, BUF.as_mut_ptr(), 256) };
        if n as usize == blocked.len() && unsafe { &BUF[..blocked.len()] } == blocked {
            let msg = b"rust-minimal: refusing recipient";
            unsafe { log(0, msg.as_ptr(), msg.len() as i32) };
            reply(550, b"5.7.1", b"blocked by rust-minimal");
            return REJECT;
        }
    }
    if hook == HOOK_DATA {
        let (name, value) = (b"X-Rust", b"hello from rust");
        unsafe { add_header(name.as_ptr(), name.len() as i32, value.as_ptr(), value.len() as i32) };
    }
    CONTINUE
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
