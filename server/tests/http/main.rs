//! The server over HTTP and WebSocket: the router in-process, then the ComfyUI proxy and `/ws` over
//! real sockets. One test binary, because each links the whole app and the views' symbols make
//! every binary hundreds of megabytes.

mod accounts;
mod api_paths;
mod common;
mod error_kinds;
mod jobs;
mod nodes;
mod proxy;
mod router;
mod socket;
