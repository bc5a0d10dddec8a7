//! How Rust futures are woken in this isolate. wasm-bindgen's executor (js-sys `futures::queue`)
//! runs woken tasks in a microtask, scheduled with `queueMicrotask` when the global has it and
//! with `Promise.resolve().then` otherwise, and it makes that choice once, when its queue is
//! created. In workerd `queueMicrotask` costs about 3.9 µs of CPU a call and `then` on a
//! resolved promise about 0.14 µs (`node bench/microtask/run.mjs`: a JS Worker scheduling
//! 1,000,000 of each), and a forwarded request wakes the executor four or five times (the
//! entry, the KV reads, the signature, the origin's answer). `make profile` showed
//! `queueMicrotask` at 12 % of the isolate's busy time before, and not at all after.
//!
//! So the queue is created here, at start-up, while `queueMicrotask` is hidden from it. Both are
//! microtasks of the same checkpoint, so the order in which tasks run does not change. A panic
//! (`panic = "abort"`) traps the instance either way, and the generated glue replaces it, which
//! runs this again for the new instance.

use worker::wasm_bindgen::JsValue;
use worker::{js_sys, wasm_bindgen_futures};

pub fn wake_with_promise_jobs() {
    let global = js_sys::global();
    let name = JsValue::from_str("queueMicrotask");
    let Ok(queue_microtask) = js_sys::Reflect::get(&global, &name) else {
        return;
    };
    if js_sys::Reflect::set(&global, &name, &JsValue::UNDEFINED) != Ok(true) {
        return;
    }
    // The first spawn creates the executor's queue, which looks at the global now.
    wasm_bindgen_futures::spawn_local(async {});
    let _ = js_sys::Reflect::set(&global, &name, &queue_microtask);
}
