//! The benchmarks' flags: `--name VALUE` pairs after `cargo bench --bench
//! NAME --`, read the same way by every benchmark.

#![allow(dead_code, reason = "each benchmark reads the flags it has")]

/// The value after `name` on the command line, if there is one.
pub fn text_arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

/// The number after `name`, or `default` when it is absent or not a number.
pub fn arg(name: &str, default: f64) -> f64 {
    text_arg(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
