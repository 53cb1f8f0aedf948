//! The flags that bound what `run` downloads and from where.

use crate::steps::{DownloadOptions, HostRule};

#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Results and files")]
pub struct DownloadArgs {
    /// Largest result file saved, e.g. `800MB` or `2GiB`; a larger one fails its step [default: 512MiB].
    #[arg(long, value_name = "SIZE", value_parser = crate::steps::parse_size)]
    pub max_download_size: Option<u64>,
    /// Also download result files from HOST: `HOST`, `HOST:PORT`, `http://HOST:PORT` or `*.DOMAIN` (repeatable).
    #[arg(long = "allow-download-host", value_name = "HOST")]
    pub allow_download_hosts: Vec<HostRule>,
}

impl DownloadArgs {
    /// `options` with these flags applied.
    pub fn apply(&self, options: DownloadOptions) -> DownloadOptions {
        let max = self.max_download_size.unwrap_or(options.max_bytes);
        let deadline = options.deadline;
        options
            .with_limits(max, deadline)
            .with_allowed_hosts(self.allow_download_hosts.clone())
    }
}
