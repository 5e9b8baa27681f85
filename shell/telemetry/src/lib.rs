//! What IT's tools read from a running shell: a small HTTP/1.1 server on a loopback address the
//! admin policy names (`telemetry.listen`), answering `GET` with whatever the shell's routes say
//! (health, and the metrics Prometheus scrapes). Every request is hostile until parsed: the head is capped, the
//! parser refuses anything but a plain `GET`/`HEAD` of an absolute path, and each connection has
//! a deadline. It also sends IT's OpenTelemetry collector the desk's traces ([`trace`]).

pub mod http;
pub mod metrics;
pub mod redact;
pub mod server;
pub mod trace;

pub use http::{HttpError, Request, Response};
pub use server::{Routes, serve};
