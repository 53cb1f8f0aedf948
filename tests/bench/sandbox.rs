//! Starting `sonicflow sandbox` for a benchmark: the process, and the base
//! URL it prints on its first line.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Starts `exe sandbox ARGS…`; the process and its base URL, or what failed.
pub fn start(exe: &str, args: &[&str]) -> Result<(Child, String), String> {
    let mut sandbox = Command::new(exe)
        .arg("sandbox")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{exe} sandbox: {e}"))?;
    let mut url = String::new();
    let out = sandbox.stdout.take().ok_or("the sandbox has no stdout")?;
    BufReader::new(out)
        .read_line(&mut url)
        .map_err(|e| format!("reading the sandbox's URL: {e}"))?;
    Ok((sandbox, url.trim().to_owned()))
}
