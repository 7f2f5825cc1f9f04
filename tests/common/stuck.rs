//! A registered thread stuck attached: it holds every QSBR goal back and
//! keeps every stop waiting until it is released.
#![allow(dead_code)] // each test binary uses a subset

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Runs `body` while a registered thread named "stuck" sits attached without
/// quiescent states, then releases it (`body` may release it earlier by
/// sending on the channel it gets) and joins it.
pub fn with_a_stuck_thread<T>(body: impl FnOnce(&mpsc::Sender<()>) -> T) -> T {
    let (registered, wait) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let stuck = thread::Builder::new()
        .name("stuck".into())
        .spawn(move || {
            let me = gcmalloc::register_thread();
            registered.send(()).unwrap();
            // Released by `body`, at the end, or (if the test hangs) later.
            let _ = released.recv_timeout(Duration::from_secs(60));
            me.quiescent();
            drop(me);
        })
        .unwrap();
    wait.recv().unwrap();
    let out = body(&release);
    let _ = release.send(());
    stuck.join().unwrap();
    out
}
