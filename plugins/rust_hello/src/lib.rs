//! A jobhost job in Rust, with the plugin ABI (sdk/include/jobhost/plugin.h,
//! ABI 1.1) declared by hand: no bindgen, no crates, std only.
//!
//! Params: `greeting` (what to say, default "hello") and `outcome` (`ok`,
//! `retry`, `fail` or `panic`: what the run ends with, default `ok`). The run
//! logs a line, sets its message to "<greeting> from Rust", records the metric
//! `greeting_bytes` and ends as `outcome` says.

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::panic::{self, AssertUnwindSafe};

// ---- the ABI, as plugin.h declares it -------------------------------------

const JOBHOST_ABI_MAJOR: u16 = 1;
const JOBHOST_ABI_MINOR: u16 = 1;

const JOBHOST_OK: i32 = 0;
const JOBHOST_RETRY: i32 = 1;
const JOBHOST_FAIL: i32 = 2;

const JOBHOST_LOG_INFO: i32 = 1;
const JOBHOST_LOG_WARN: i32 = 2;

/// `jobhost_run`: opaque, only ever behind a pointer the host passes in.
#[repr(C)]
pub struct JobhostRun {
    _opaque: [u8; 0],
}

/// `jobhost_host_api`. Every function pointer is an `Option`, so that a field
/// the host did not fill (a shorter `struct_size`, ABI rule 2) is `None`.
#[repr(C)]
pub struct JobhostHostApi {
    struct_size: u32,
    log: Option<unsafe extern "C" fn(*mut JobhostRun, i32, *const c_char)>,
    param: Option<unsafe extern "C" fn(*mut JobhostRun, *const c_char) -> *const c_char>,
    secret: Option<unsafe extern "C" fn(*mut JobhostRun, *const c_char) -> *const c_char>,
    heartbeat: Option<unsafe extern "C" fn(*mut JobhostRun, f64)>,
    cancelled: Option<unsafe extern "C" fn(*mut JobhostRun) -> i32>,
    metric: Option<unsafe extern "C" fn(*mut JobhostRun, *const c_char, f64)>,
    set_message: Option<unsafe extern "C" fn(*mut JobhostRun, *const c_char)>,
    run_id: Option<unsafe extern "C" fn(*mut JobhostRun) -> *const c_char>,
    attempt: Option<unsafe extern "C" fn(*mut JobhostRun) -> u32>,
    scheduled_for: Option<unsafe extern "C" fn(*mut JobhostRun) -> i64>,
    // 1.1
    trigger_kind: Option<unsafe extern "C" fn(*mut JobhostRun) -> *const c_char>,
    event: Option<unsafe extern "C" fn(*mut JobhostRun) -> *const c_char>,
}

type RunFn = unsafe extern "C" fn(*const JobhostHostApi, *mut JobhostRun) -> i32;

/// `jobhost_plugin`, the descriptor.
#[repr(C)]
pub struct JobhostPlugin {
    struct_size: u32,
    abi_major: u16,
    abi_minor: u16,
    name: *const c_char,
    version: *const c_char,
    description: *const c_char,
    init: Option<RunFn>,
    run: Option<RunFn>,
    shutdown: Option<unsafe extern "C" fn()>,
}

/// A `static` must be `Sync`, and raw pointers are not: the descriptor is
/// immutable and its pointers point at `'static` string literals, so sharing
/// it between threads is sound.
struct Descriptor(JobhostPlugin);
unsafe impl Sync for Descriptor {}

static DESCRIPTOR: Descriptor = Descriptor(JobhostPlugin {
    struct_size: std::mem::size_of::<JobhostPlugin>() as u32,
    abi_major: JOBHOST_ABI_MAJOR,
    abi_minor: JOBHOST_ABI_MINOR,
    name: b"rust_hello\0".as_ptr() as *const c_char,
    version: concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char,
    description: b"Says its greeting param from Rust; ends as its outcome param says\0".as_ptr()
        as *const c_char,
    init: None,
    run: Some(run),
    shutdown: None,
});

/// The one exported symbol. No work here: the catalog's probe calls it only
/// to read the descriptor.
#[no_mangle]
pub extern "C" fn jobhost_plugin_v1() -> *const JobhostPlugin {
    &DESCRIPTOR.0
}

// ---- a safe view of the host API ------------------------------------------

/// The host API for one run. Strings going in become C strings (an interior
/// NUL ends them early rather than failing); strings coming back are copied.
struct Host {
    api: JobhostHostApi,
    run: *mut JobhostRun,
}

impl Host {
    /// Copies min(our size, the host's struct_size) bytes into a zeroed
    /// struct (ABI rule 2): a function the host does not have stays `None`.
    unsafe fn new(api: *const JobhostHostApi, run: *mut JobhostRun) -> Option<Host> {
        if api.is_null() {
            return None;
        }
        let mut copy: JobhostHostApi = std::mem::zeroed();
        let size = ((*api).struct_size as usize).min(std::mem::size_of::<JobhostHostApi>());
        std::ptr::copy_nonoverlapping(api as *const u8, &mut copy as *mut _ as *mut u8, size);
        Some(Host { api: copy, run })
    }

    fn c(text: &str) -> CString {
        let end = text.find('\0').unwrap_or(text.len());
        CString::new(&text[..end]).unwrap_or_default()
    }

    unsafe fn owned(ptr: *const c_char) -> Option<String> {
        (!ptr.is_null()).then(|| CStr::from_ptr(ptr).to_string_lossy().into_owned())
    }

    fn log(&self, level: i32, message: &str) {
        if let Some(f) = self.api.log {
            unsafe { f(self.run, level, Self::c(message).as_ptr()) }
        }
    }

    fn param(&self, key: &str) -> Option<String> {
        let f = self.api.param?;
        unsafe { Self::owned(f(self.run, Self::c(key).as_ptr())) }
    }

    fn metric(&self, name: &str, value: f64) {
        if let Some(f) = self.api.metric {
            unsafe { f(self.run, Self::c(name).as_ptr(), value) }
        }
    }

    fn set_message(&self, message: &str) {
        if let Some(f) = self.api.set_message {
            unsafe { f(self.run, Self::c(message).as_ptr()) }
        }
    }

    fn run_id(&self) -> String {
        let f = match self.api.run_id {
            Some(f) => f,
            None => return String::new(),
        };
        unsafe { Self::owned(f(self.run)) }.unwrap_or_default()
    }

    fn trigger_kind(&self) -> String {
        let f = match self.api.trigger_kind {
            Some(f) => f,
            None => return "unknown".into(),
        };
        unsafe { Self::owned(f(self.run)) }.unwrap_or_default()
    }
}

// ---- the job --------------------------------------------------------------

fn hello(host: &Host) -> i32 {
    let greeting = host.param("greeting").unwrap_or_else(|| "hello".into());
    let outcome = host.param("outcome").unwrap_or_else(|| "ok".into());
    host.log(
        JOBHOST_LOG_INFO,
        &format!(
            "{} from Rust, run {} ({})",
            greeting,
            host.run_id(),
            host.trigger_kind()
        ),
    );
    host.metric("greeting_bytes", greeting.len() as f64);
    host.set_message(&format!("{} from Rust", greeting));
    match outcome.as_str() {
        "ok" => JOBHOST_OK,
        "retry" => {
            host.set_message(&format!("{} from Rust, asked to retry", greeting));
            JOBHOST_RETRY
        }
        "fail" => {
            host.set_message(&format!("{} from Rust, asked to fail", greeting));
            JOBHOST_FAIL
        }
        "panic" => panic!("asked to panic after saying {}", greeting),
        other => {
            host.log(
                JOBHOST_LOG_WARN,
                &format!("unknown outcome param \"{}\"", other),
            );
            host.set_message(&format!(
                "unknown outcome param \"{}\": use ok, retry, fail or panic",
                other
            ));
            JOBHOST_FAIL
        }
    }
}

/// The text of a panic's payload (`panic!` gives a `&str` or a `String`).
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}

/// `run`: a panic must not unwind into the host (undefined behaviour across
/// `extern "C"`; Rust 1.81+ aborts the process instead): it is caught here
/// and fails the run, its text the run's message.
unsafe extern "C" fn run(api: *const JobhostHostApi, run: *mut JobhostRun) -> i32 {
    let host = match Host::new(api, run) {
        Some(host) => host,
        None => return JOBHOST_FAIL,
    };
    match panic::catch_unwind(AssertUnwindSafe(|| hello(&host))) {
        Ok(result) => result,
        Err(payload) => {
            host.set_message(&format!("panicked: {}", panic_text(payload.as_ref())));
            JOBHOST_FAIL
        }
    }
}
