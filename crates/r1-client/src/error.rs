//! Client errors, each with the exit code the CLI uses for it.

use r1_proto::ApiError;

/// What can go wrong between a client and the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon answered with another protocol id.
    #[error("the r1 daemon at {sock} speaks {found} (version {version}), but this client speaks {expected}; stop it with `kill {pid}` (or upgrade this client) and try again")]
    Incompatible {
        /// The protocol the daemon answered.
        found: String,
        /// What this client speaks.
        expected: String,
        /// The daemon's version.
        version: String,
        /// The daemon's pid.
        pid: u32,
        /// The socket path.
        sock: String,
    },
    /// No daemon answered, and none could be started.
    #[error("cannot reach the r1 daemon: {0}")]
    Unreachable(String),
    /// A file or listener does not belong to the user; nothing was sent to it.
    #[error("{0}")]
    Untrusted(String),
    /// The daemon answered with an error envelope.
    #[error("{}: {}", .0.code.as_str(), .0.message)]
    Api(ApiError),
    /// The daemon sent something this client cannot read.
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The process exit code for this error: 1 for a daemon-side error, 3 for an
    /// incompatible daemon, 4 for an unreachable one, 5 for an untrusted file or port.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Api(e) => e.cli_exit_code(),
            ClientError::Protocol(_) => 1,
            ClientError::Incompatible { .. } => 3,
            ClientError::Unreachable(_) => 4,
            ClientError::Untrusted(_) => 5,
        }
    }
}

impl From<ApiError> for ClientError {
    fn from(e: ApiError) -> Self {
        ClientError::Api(e)
    }
}
