//! One module per subcommand: each turns parsed arguments into an exit code,
//! printing results on stdout and diagnostics on stderr.

pub mod credits;
pub mod sandbox;
pub mod schema;
