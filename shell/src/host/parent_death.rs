//! What ties a native app's life to the shell's: the one place in the shell with `unsafe`
//! (setting the parent-death signal between `fork` and `exec` has no safe interface).

/// A native app the shell starts is sent SIGTERM if the shell dies without stopping it (a
/// crash, `kill -9`), like an app host, which leaves when its socket closes: a native app need
/// not watch its connection to go with the desk. (`PR_SET_PDEATHSIG`: it fires when the thread
/// that started the app ends, and the shell starts apps from the runtime's worker threads,
/// which live as long as the shell.)
///
/// ## Platform-specific
/// Linux only.
#[expect(unsafe_code, reason = "pre_exec is the one way to set the child's parent-death signal")]
pub(crate) fn die_with_the_shell(command: &mut tokio::process::Command) {
    let shell = rustix::process::getpid();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes two system calls (prctl, getppid) and
    // allocates nothing.
    unsafe {
        command.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))?;
            // The shell died before the signal was set: go now.
            if rustix::process::getppid() != Some(shell) {
                return Err(rustix::io::Errno::SRCH.into());
            }
            Ok(())
        });
    }
}
