//! What kind of failure an error is: the one rule that turns any service's error into an HTTP
//! status and tells the browser how to react. Shared so both sides read the same kinds.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is wrong; the message names the field and why.
    Invalid,
    /// The thing asked for does not exist (or is not the caller's to see).
    NotFound,
    /// The request is fine but clashes with the current state (a name taken, a full disk).
    Conflict,
    /// The caller may not do this.
    Forbidden,
    /// No valid credentials came with a request that needs its own (a worker's token).
    Unauthorized,
    /// A per-person limit is reached (pending jobs); the message names the limit.
    TooMany,
    /// A service this deck depends on (ComfyUI, a download host) is away or answered badly.
    Unavailable,
    /// Our own fault: a database, disk or bug problem. Logged and recorded.
    Internal,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Invalid,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::Forbidden,
        ErrorKind::Unauthorized,
        ErrorKind::TooMany,
        ErrorKind::Unavailable,
        ErrorKind::Internal,
    ];

    /// The HTTP status every endpoint answers this kind with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::Invalid => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::TooMany => 429,
            ErrorKind::Internal => 500,
            ErrorKind::Unavailable => 502,
        }
    }

    /// Server-side faults are 5xx, never a 4xx that blames the caller.
    pub fn is_server_fault(self) -> bool {
        self.http_status() >= 500
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_faults_and_upstream_ones_are_5xx() {
        for kind in ErrorKind::ALL {
            let status = kind.http_status();
            match kind {
                ErrorKind::Internal | ErrorKind::Unavailable => assert!(status >= 500),
                _ => assert!((400..500).contains(&status), "{kind:?} → {status}"),
            }
        }
    }
}
