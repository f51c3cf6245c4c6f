//! A minimal waPC host on [`wasmi`], enough to run the sidekiq-guard Kubewarden policy the way
//! Kubewarden's policy server does — load the module, call `_start` and `wapc_init`, then
//! `__guest_call` per operation — in tests and benchmarks, without wasmtime's build cost.
//!
//! The waPC protocol (the guest's side is `wapc-guest`): the host calls the guest's export
//! `__guest_call(operation_len, payload_len)`; the guest allocates two buffers and calls back the
//! host import `__guest_request(operation_ptr, payload_ptr)`, which copies the operation name and
//! the payload into them; the guest answers through `__guest_response(ptr, len)` or
//! `__guest_error(ptr, len)` and returns 1 (success) or 0 (failure). Guests may call the host with
//! `__host_call` (Kubewarden's host capabilities); this host has none and says so.
//!
//! Policies built for `wasm32-wasip1` also import a handful of WASI functions; the host provides
//! the ones a Rust guest's standard library uses, deterministically and without touching the real
//! environment: no environment variables, `fd_write` captured (a panicking guest prints its
//! message there, which the host reports with the trap), `random_get` from a fixed-seed generator.
//!
//! Everything the guest passes is bounds-checked: a bad pointer traps the guest with a message,
//! never panics the host.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use wasmi::{Caller, Config, Engine, Extern, Linker, Memory, Module, Store, TypedFunc};

/// The waPC import module.
const WAPC: &str = "wapc";
/// The WASI preview 1 import module.
const WASI: &str = "wasi_snapshot_preview1";
/// Init exports called after instantiation, in this order, as waPC hosts do (`_start` for
/// TinyGo guests, `wapc_init` for Rust guests).
const STARTS: [&str; 2] = ["_start", "wapc_init"];
/// WASI `errno` values used here.
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: i32 = 8;
/// The stack the host's calls should run on (see [`on_big_stack`]).
pub const STACK_SIZE: usize = 8 << 20;

/// What can go wrong loading a module or calling it.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The module file cannot be read.
    #[error("cannot read the policy module {path}")]
    Read {
        /// The module's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a valid module, an import this host does not provide, or an init function trapped.
    #[error("cannot instantiate the module")]
    Instantiate(#[source] wasmi::Error),
    /// The module lacks `__guest_call` or `memory`: not a waPC guest.
    #[error("not a waPC guest: {0}")]
    NotWapc(String),
    /// The guest trapped (a panic, an out-of-bounds access, `proc_exit`…).
    #[error("the guest trapped during {operation:?}: {trap}{}", stderr_suffix(.stderr))]
    Trap {
        /// The operation being called.
        operation: String,
        /// The trap.
        trap: wasmi::Error,
        /// What the guest wrote to stdout/stderr during the call.
        stderr: String,
    },
    /// The guest answered with a waPC error (e.g. no handler for the operation).
    #[error("the guest failed {operation:?}: {message}")]
    Guest {
        /// The operation being called.
        operation: String,
        /// The guest's error message.
        message: String,
    },
    /// The guest returned without calling `__guest_response` or `__guest_error`.
    #[error("the guest returned {code} from {operation:?} without a response")]
    NoAnswer {
        /// The operation being called.
        operation: String,
        /// `__guest_call`'s return value.
        code: i32,
    },
    /// The payload is larger than a wasm32 guest can address.
    #[error("payload of {0} bytes is too large for a wasm32 guest")]
    TooLarge(usize),
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(" (guest output: {})", stderr.trim_end())
    }
}

/// The host's side of one call, reachable from the imports.
#[derive(Debug, Default)]
struct HostState {
    operation: Vec<u8>,
    payload: Vec<u8>,
    response: Option<Vec<u8>>,
    error: Option<Vec<u8>>,
    host_error: Vec<u8>,
    output: Vec<u8>,
    console: Vec<String>,
    random: u64,
}

/// A loaded, initialised waPC guest. Calls are sequential, as in one Kubewarden evaluation slot.
pub struct WapcHost {
    store: Store<HostState>,
    guest_call: TypedFunc<(i32, i32), i32>,
}

impl std::fmt::Debug for WapcHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WapcHost").finish_non_exhaustive()
    }
}

impl WapcHost {
    /// Reads and instantiates the module at `path`.
    pub fn from_file(path: &Path) -> Result<Self, HostError> {
        let bytes = std::fs::read(path).map_err(|source| HostError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::new(&bytes)
    }

    /// Compiles and instantiates `wasm`, then runs its init exports (`_start`, `wapc_init`).
    pub fn new(wasm: &[u8]) -> Result<Self, HostError> {
        // Eager compilation: translation cost is paid here, not inside the first timed call.
        let mut config = Config::default();
        config.compilation_mode(wasmi::CompilationMode::Eager);
        let engine = Engine::new(&config);
        let module = Module::new(&engine, wasm).map_err(HostError::Instantiate)?;
        let mut store = Store::new(
            &engine,
            HostState {
                random: 0x9E37_79B9_7F4A_7C15,
                ..HostState::default()
            },
        );
        let mut linker = Linker::new(&engine);
        define_wapc(&mut linker).map_err(HostError::Instantiate)?;
        define_wasi(&mut linker).map_err(HostError::Instantiate)?;
        let instance = linker
            .instantiate_and_start(&mut store, &module)
            .map_err(HostError::Instantiate)?;
        if instance.get_memory(&store, "memory").is_none() {
            return Err(HostError::NotWapc("no exported memory".into()));
        }
        let guest_call = instance
            .get_typed_func::<(i32, i32), i32>(&store, "__guest_call")
            .map_err(|err| HostError::NotWapc(format!("__guest_call: {err}")))?;
        for start in STARTS {
            if let Ok(init) = instance.get_typed_func::<(), ()>(&store, start) {
                init.call(&mut store, ()).map_err(|trap| HostError::Trap {
                    operation: start.to_owned(),
                    trap,
                    stderr: take_output(&mut store),
                })?;
            }
        }
        Ok(Self { store, guest_call })
    }

    /// Calls waPC `operation` with `payload` and returns the guest's response.
    pub fn call(&mut self, operation: &str, payload: &[u8]) -> Result<Vec<u8>, HostError> {
        let op_len =
            i32::try_from(operation.len()).map_err(|_| HostError::TooLarge(operation.len()))?;
        let len = i32::try_from(payload.len()).map_err(|_| HostError::TooLarge(payload.len()))?;
        {
            let state = self.store.data_mut();
            state.operation.clear();
            state.operation.extend_from_slice(operation.as_bytes());
            state.payload.clear();
            state.payload.extend_from_slice(payload);
            state.response = None;
            state.error = None;
            state.output.clear();
        }
        let code = self
            .guest_call
            .call(&mut self.store, (op_len, len))
            .map_err(|trap| HostError::Trap {
                operation: operation.to_owned(),
                trap,
                stderr: take_output(&mut self.store),
            })?;
        let state = self.store.data_mut();
        match (code, state.response.take(), state.error.take()) {
            (1, Some(response), _) => Ok(response),
            (_, _, Some(error)) => Err(HostError::Guest {
                operation: operation.to_owned(),
                message: String::from_utf8_lossy(&error).into_owned(),
            }),
            (code, _, None) => Err(HostError::NoAnswer {
                operation: operation.to_owned(),
                code,
            }),
        }
    }

    /// Lines the guest logged with `__console_log` since the last call to this method.
    pub fn take_console(&mut self) -> Vec<String> {
        std::mem::take(&mut self.store.data_mut().console)
    }
}

fn take_output(store: &mut Store<HostState>) -> String {
    String::from_utf8_lossy(&std::mem::take(&mut store.data_mut().output)).into_owned()
}

/// Runs `f` on a thread with an 8 MiB stack and returns its result. wasmi compiles and runs
/// guest code on the host's stack: the policy tests overflow 256 KiB and fit in 1 MiB with wasmi
/// optimised (the root `Cargo.toml` does so for `dev`), and need more unoptimised, where wasmi
/// cannot dispatch by tail calls. 8 MiB leaves headroom under any profile.
/// A panic in `f` is re-raised in the caller; the error is the thread's failure to start.
pub fn on_big_stack<R: Send>(f: impl FnOnce() -> R + Send) -> std::io::Result<R> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("wapc-host".into())
            .stack_size(STACK_SIZE)
            .spawn_scoped(scope, f)?;
        match handle.join() {
            Ok(value) => Ok(value),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// The guest's exported linear memory.
fn memory(caller: &Caller<'_, HostState>) -> Result<Memory, wasmi::Error> {
    caller
        .get_export("memory")
        .and_then(Extern::into_memory)
        .ok_or_else(|| wasmi::Error::new("the guest exports no memory"))
}

/// Converts a guest (pointer, length) to a checked host range of `memory_len` bytes.
fn range(ptr: i32, len: i32, memory_len: usize) -> Result<std::ops::Range<usize>, wasmi::Error> {
    // wasm32 pointers and lengths are unsigned 32-bit values carried in i32s.
    let start = ptr as u32 as usize;
    let len = len as u32 as usize;
    match start.checked_add(len) {
        Some(end) if end <= memory_len => Ok(start..end),
        _ => Err(wasmi::Error::new(format!(
            "guest buffer of {len} bytes at {start} is outside its {memory_len}-byte memory"
        ))),
    }
}

fn read(caller: &Caller<'_, HostState>, ptr: i32, len: i32) -> Result<Vec<u8>, wasmi::Error> {
    let data = memory(caller)?.data(caller);
    Ok(data[range(ptr, len, data.len())?].to_vec())
}

fn write(caller: &mut Caller<'_, HostState>, ptr: i32, bytes: &[u8]) -> Result<(), wasmi::Error> {
    let len = i32::try_from(bytes.len()).map_err(|_| wasmi::Error::new("buffer too large"))?;
    let data = memory(caller)?.data_mut(caller);
    let target = range(ptr, len, data.len())?;
    data[target].copy_from_slice(bytes);
    Ok(())
}

fn read_u32(caller: &Caller<'_, HostState>, ptr: i32) -> Result<u32, wasmi::Error> {
    let data = memory(caller)?.data(caller);
    let mut word = [0; 4];
    word.copy_from_slice(&data[range(ptr, 4, data.len())?]);
    Ok(u32::from_le_bytes(word))
}

fn define_wapc(linker: &mut Linker<HostState>) -> Result<(), wasmi::Error> {
    linker.func_wrap(
        WAPC,
        "__guest_request",
        |mut caller: Caller<'_, HostState>, op_ptr: i32, ptr: i32| -> Result<(), wasmi::Error> {
            let memory = memory(&caller)?;
            let (data, state) = memory.data_and_store_mut(&mut caller);
            for (ptr, bytes) in [(op_ptr, &state.operation), (ptr, &state.payload)] {
                let len = i32::try_from(bytes.len())
                    .map_err(|_| wasmi::Error::new("buffer too large"))?;
                let target = range(ptr, len, data.len())?;
                data[target].copy_from_slice(bytes);
            }
            Ok(())
        },
    )?;
    linker.func_wrap(
        WAPC,
        "__guest_response",
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> Result<(), wasmi::Error> {
            let bytes = read(&caller, ptr, len)?;
            caller.data_mut().response = Some(bytes);
            Ok(())
        },
    )?;
    linker.func_wrap(
        WAPC,
        "__guest_error",
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> Result<(), wasmi::Error> {
            let bytes = read(&caller, ptr, len)?;
            caller.data_mut().error = Some(bytes);
            Ok(())
        },
    )?;
    linker.func_wrap(
        WAPC,
        "__host_call",
        |mut caller: Caller<'_, HostState>,
         bd_ptr: i32,
         bd_len: i32,
         ns_ptr: i32,
         ns_len: i32,
         op_ptr: i32,
         op_len: i32,
         _ptr: i32,
         _len: i32|
         -> Result<i32, wasmi::Error> {
            let name = |caller: &Caller<'_, HostState>, ptr, len| {
                read(caller, ptr, len).map(|b| String::from_utf8_lossy(&b).into_owned())
            };
            let binding = name(&caller, bd_ptr, bd_len)?;
            let namespace = name(&caller, ns_ptr, ns_len)?;
            let operation = name(&caller, op_ptr, op_len)?;
            caller.data_mut().host_error = format!(
                "host capability {binding}/{namespace}/{operation} is not provided by this test host"
            )
            .into_bytes();
            Ok(0)
        },
    )?;
    linker.func_wrap(WAPC, "__host_response_len", || -> i32 { 0 })?;
    linker.func_wrap(WAPC, "__host_response", |_ptr: i32| {})?;
    linker.func_wrap(
        WAPC,
        "__host_error_len",
        |caller: Caller<'_, HostState>| -> i32 {
            i32::try_from(caller.data().host_error.len()).unwrap_or(i32::MAX)
        },
    )?;
    linker.func_wrap(
        WAPC,
        "__host_error",
        |mut caller: Caller<'_, HostState>, ptr: i32| -> Result<(), wasmi::Error> {
            let message = caller.data().host_error.clone();
            write(&mut caller, ptr, &message)
        },
    )?;
    linker.func_wrap(
        WAPC,
        "__console_log",
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> Result<(), wasmi::Error> {
            let line = String::from_utf8_lossy(&read(&caller, ptr, len)?).into_owned();
            caller.data_mut().console.push(line);
            Ok(())
        },
    )?;
    Ok(())
}

fn define_wasi(linker: &mut Linker<HostState>) -> Result<(), wasmi::Error> {
    // No environment: both counts are zero and there is nothing to copy.
    linker.func_wrap(
        WASI,
        "environ_sizes_get",
        |mut caller: Caller<'_, HostState>,
         count_ptr: i32,
         size_ptr: i32|
         -> Result<i32, wasmi::Error> {
            write(&mut caller, count_ptr, &0u32.to_le_bytes())?;
            write(&mut caller, size_ptr, &0u32.to_le_bytes())?;
            Ok(ERRNO_SUCCESS)
        },
    )?;
    linker.func_wrap(WASI, "environ_get", |_environ: i32, _buf: i32| -> i32 {
        ERRNO_SUCCESS
    })?;
    // stdout and stderr are captured and attached to trap reports.
    linker.func_wrap(
        WASI,
        "fd_write",
        |mut caller: Caller<'_, HostState>,
         fd: i32,
         iovs: i32,
         iovs_len: i32,
         written_ptr: i32|
         -> Result<i32, wasmi::Error> {
            if fd != 1 && fd != 2 {
                return Ok(ERRNO_BADF);
            }
            let mut written: u32 = 0;
            for i in 0..iovs_len {
                let iov = iovs.wrapping_add(i.wrapping_mul(8));
                let ptr = read_u32(&caller, iov)? as i32;
                let len = read_u32(&caller, iov.wrapping_add(4))? as i32;
                let bytes = read(&caller, ptr, len)?;
                written = written.wrapping_add(bytes.len() as u32);
                caller.data_mut().output.extend_from_slice(&bytes);
            }
            write(&mut caller, written_ptr, &written.to_le_bytes())?;
            Ok(ERRNO_SUCCESS)
        },
    )?;
    linker.func_wrap(WASI, "proc_exit", |code: i32| -> Result<(), wasmi::Error> {
        Err(wasmi::Error::i32_exit(code))
    })?;
    // A fixed-seed xorshift generator: std's HashMap seeds come from here, and runs stay
    // reproducible.
    linker.func_wrap(
        WASI,
        "random_get",
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> Result<i32, wasmi::Error> {
            // Check the guest's range before allocating the length it asked for.
            range(ptr, len, memory(&caller)?.data(&caller).len())?;
            let mut bytes = Vec::with_capacity(len as u32 as usize);
            let mut state = caller.data().random;
            while bytes.len() < len as u32 as usize {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes.extend_from_slice(&state.to_le_bytes());
            }
            bytes.truncate(len as u32 as usize);
            caller.data_mut().random = state;
            write(&mut caller, ptr, &bytes)?;
            Ok(ERRNO_SUCCESS)
        },
    )?;
    Ok(())
}

/// Where `scripts/build-policy` leaves the module: `$SIDEKIQ_GUARD_POLICY_WASM` if set, else
/// `<target dir>/wasm32-wasip1/policy/sidekiq_guard_policy.wasm`, where the target dir is
/// `$CARGO_TARGET_DIR` or the workspace's `target/`.
pub fn policy_module_path() -> PathBuf {
    if let Some(path) = std::env::var_os("SIDEKIQ_GUARD_POLICY_WASM") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("wasm32-wasip1/policy/sidekiq_guard_policy.wasm")
}

/// The repository root: the nearest ancestor holding `Cargo.lock` of the package cargo is
/// running (`CARGO_MANIFEST_DIR` at run time), else of this crate's own path at build time,
/// which goes stale when a build is reused from another checkout of the repository.
pub fn workspace_root() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR"));
    let running = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    running
        .as_deref()
        .into_iter()
        .chain([built])
        .find_map(|start| start.ancestors().find(|d| d.join("Cargo.lock").is_file()))
        .map_or_else(|| built.join("../.."), Path::to_path_buf)
}

/// Why the built policy cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// Not built yet.
    #[error("no policy module at {0}: build it with scripts/build-policy")]
    Missing(PathBuf),
    /// Older than the code it is built from: testing it would test yesterday's policy.
    #[error(
        "the policy module {module} is older than {newer}: rebuild it with scripts/build-policy"
    )]
    Stale {
        /// The module.
        module: PathBuf,
        /// A source file changed since it was built.
        newer: PathBuf,
    },
    /// A file's metadata cannot be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The built policy module, checked to be newer than every source file it was built from (the
/// files cargo lists in the module's dep-info, `sidekiq_guard_policy.d` beside it). A module
/// given with `$SIDEKIQ_GUARD_POLICY_WASM` and no dep-info beside it is taken as it is.
pub fn built_policy() -> Result<PathBuf, ModuleError> {
    let module = policy_module_path();
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ModuleError::Io { path, source }
    };
    let built = match std::fs::metadata(&module) {
        Ok(meta) => meta.modified().map_err(io(&module))?,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(ModuleError::Missing(module));
        }
        Err(err) => return Err(io(&module)(err)),
    };
    let dep_info = module.with_extension("d");
    let text = match std::fs::read_to_string(&dep_info) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(module),
        Err(err) => return Err(io(&dep_info)(err)),
    };
    for source in dep_info_sources(&text) {
        // A source that no longer exists was removed since the build: stale as well.
        let changed = match std::fs::metadata(&source) {
            Ok(meta) => meta.modified().map_err(io(&source))? > built,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => true,
            Err(err) => return Err(io(&source)(err)),
        };
        if changed {
            return Err(ModuleError::Stale {
                module,
                newer: source,
            });
        }
    }
    Ok(module)
}

/// The prerequisites of the first rule of a Makefile-style dep-info file (`target: a b\ c`).
fn dep_info_sources(text: &str) -> Vec<PathBuf> {
    let line = text.lines().next().unwrap_or_default();
    let Some((_, prerequisites)) = line.split_once(": ") else {
        return Vec::new();
    };
    let mut sources = Vec::new();
    let mut current = String::new();
    let mut chars = prerequisites.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ' ' => {
                if !current.is_empty() {
                    sources.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        sources.push(PathBuf::from(current));
    }
    sources
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn reads_the_sources_of_a_dep_info_file() {
        let text =
            "/t/p.wasm: /w/policy/src/lib.rs /w/src/a\\ b.rs /w/src/lib.rs\n\n/w/src/lib.rs:\n";
        assert_eq!(
            dep_info_sources(text),
            [
                PathBuf::from("/w/policy/src/lib.rs"),
                PathBuf::from("/w/src/a b.rs"),
                PathBuf::from("/w/src/lib.rs"),
            ]
        );
        assert!(dep_info_sources("").is_empty());
    }

    /// (module
    ///   (memory (export "memory") 1)
    ///   (func (export "__guest_call") (param i32 i32) (result i32) unreachable))
    const TRAPPING_GUEST: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
        0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f, // type 0: (i32 i32) -> i32
        0x03, 0x02, 0x01, 0x00, // func 0: type 0
        0x05, 0x03, 0x01, 0x00, 0x01, // memory: min 1 page
        0x07, 0x19, 0x02, // exports
        0x06, b'm', b'e', b'm', b'o', b'r', b'y', 0x02, 0x00, //
        0x0c, b'_', b'_', b'g', b'u', b'e', b's', b't', b'_', b'c', b'a', b'l', b'l', 0x00, 0x00,
        0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b, // body: unreachable
    ];

    /// (module
    ///   (import "wapc" "__guest_response" (func $respond (param i32 i32)))
    ///   (memory (export "memory") 1)
    ///   (func (export "__guest_call") (param i32 i32) (result i32)
    ///     (call $respond (i32.const 65535) (i32.const 100)) (i32.const 1)))
    const OUT_OF_BOUNDS_GUEST: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
        0x01, 0x0c, 0x02, // types
        0x60, 0x02, 0x7f, 0x7f, 0x00, // type 0: (i32 i32) -> ()
        0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f, // type 1: (i32 i32) -> i32
        0x02, 0x19, 0x01, 0x04, b'w', b'a', b'p', b'c', // import "wapc"
        0x10, b'_', b'_', b'g', b'u', b'e', b's', b't', b'_', b'r', b'e', b's', b'p', b'o', b'n',
        b's', b'e', 0x00, 0x00, // "__guest_response": func, type 0
        0x03, 0x02, 0x01, 0x01, // func 1: type 1
        0x05, 0x03, 0x01, 0x00, 0x01, // memory: min 1 page
        0x07, 0x19, 0x02, // exports
        0x06, b'm', b'e', b'm', b'o', b'r', b'y', 0x02, 0x00, //
        0x0c, b'_', b'_', b'g', b'u', b'e', b's', b't', b'_', b'c', b'a', b'l', b'l', 0x00, 0x01,
        0x0a, 0x0f, 0x01, 0x0d, 0x00, // code: one body of 13 bytes, no locals
        0x41, 0xff, 0xff, 0x03, // i32.const 65535
        0x41, 0xe4, 0x00, // i32.const 100
        0x10, 0x00, // call $respond
        0x41, 0x01, // i32.const 1
        0x0b,
    ];

    #[test]
    fn a_trapping_guest_is_an_error_naming_the_operation() {
        let mut host = WapcHost::new(TRAPPING_GUEST).unwrap();
        let err = host.call("validate", b"{}").unwrap_err();
        assert!(
            matches!(&err, HostError::Trap { operation, .. } if operation == "validate"),
            "{err:?}"
        );
        assert!(err.to_string().contains("unreachable"), "{err}");
    }

    #[test]
    fn a_guest_answering_outside_its_memory_traps_instead_of_panicking() {
        let mut host = WapcHost::new(OUT_OF_BOUNDS_GUEST).unwrap();
        let err = host.call("validate", b"{}").unwrap_err().to_string();
        assert!(
            err.contains("guest buffer of 100 bytes at 65535 is outside its 65536-byte memory"),
            "{err}"
        );
    }

    #[test]
    fn a_module_without_guest_call_is_not_a_wapc_guest() {
        // The trapping guest with its function export renamed to `__guest_cal_`.
        let mut bytes = TRAPPING_GUEST.to_vec();
        let at = bytes.len() - 10;
        bytes[at] = b'_';
        match WapcHost::new(&bytes) {
            Err(HostError::NotWapc(message)) => assert!(message.contains("__guest_call")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            WapcHost::new(b"not wasm"),
            Err(HostError::Instantiate(_))
        ));
    }

    #[test]
    fn a_guest_pointer_outside_memory_is_an_error_not_a_panic() {
        assert_eq!(range(16, 4, 64).ok(), Some(16..20));
        assert!(range(62, 4, 64).is_err());
        assert!(range(-1, 1, 64).is_err());
        assert!(range(8, -1, 64).is_err());
    }
}
