//! What the crash harnesses share: their settings from the environment, and an agent process
//! that can be killed with SIGKILL at any point.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A number from the environment (a harness setting such as `LAKELINK_CRASH_KILLS`), or
/// `default` when unset or not a number.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts `lakelink run` on `config`, logging errors only: the harness kills it many times.
pub fn start_agent(config: &Path) -> Child {
    Command::new(super::lakelink_bin())
        .args(["run", "--config", config.to_str().unwrap()])
        .env(
            "RUST_LOG",
            std::env::var("LAKELINK_CRASH_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the agent")
}

/// Kills the agent with SIGKILL, wherever it is, and reaps it.
pub fn kill(agent: &mut Child) {
    agent.kill().expect("SIGKILL the agent");
    agent.wait().expect("reap the agent");
}
