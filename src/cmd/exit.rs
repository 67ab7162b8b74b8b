//! Exit statuses as each subcommand's `--help` states them; the pod
//! subcommands' are `kube_once_pod::cmd::status`. The docs' tables are
//! checked against these texts (tests/cli.rs).

pub const SERVE: &str = "\
Exit status:
  0    stopped by SIGTERM or SIGINT after draining
  1    cannot start (configuration, certificates, port) or failed
  64   usage error";

pub const PREVIEW: &str = "\
Exit status:
  0    done; -o diff: nothing changes
  1    a workload is refused or an input cannot be read; -o diff: something changes
  2    -o diff: a workload is refused or an input cannot be read (as kubectl diff)
  64   usage error";

pub const EXPLAIN: &str = "\
Exit status:
  0    every workload is sent and allowed (injected or unchanged)
  1    a workload is refused (by the webhook or the API server), or an input cannot be read
  3    none is refused, but a workload is not sent to the webhook
  64   usage error";

pub const INJECTED: &str = "\
Exit status:
  0    listed (also when none is injected)
  1    an input cannot be read
  64   usage error";

pub const CERTS: &str = "\
Exit status:
  0    written
  1    cannot generate or write the certificates
  64   usage error";

pub const COMPLETION: &str = "\
Exit status:
  0    printed
  64   usage error";
