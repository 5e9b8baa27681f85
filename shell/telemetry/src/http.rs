//! The request line and headers of one HTTP/1.1 request, parsed from untrusted bytes, and the
//! bytes of a response.

/// Largest request head read, in bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// Longest path accepted.
pub const MAX_PATH: usize = 1024;

/// A request the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET` or `HEAD`.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query, if any, without the `?`.
    pub query: Option<String>,
}

/// The methods answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Read.
    Get,
    /// Read the headers only.
    Head,
}

/// Why a request was refused; each maps to a status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The head did not end within [`MAX_HEAD`] bytes.
    #[error("the request head is longer than {MAX_HEAD} bytes")]
    TooLarge,
    /// Not `METHOD SP PATH SP HTTP/1.x`, or not text.
    #[error("malformed request line")]
    Malformed,
    /// A method other than GET and HEAD.
    #[error("only GET and HEAD are answered")]
    Method,
    /// A path that is not absolute, too long, or has control characters.
    #[error("bad path")]
    Path,
}

impl HttpError {
    /// The status code that says it.
    pub fn status(&self) -> u16 {
        match self {
            Self::TooLarge => 431,
            Self::Method => 405,
            Self::Malformed | Self::Path => 400,
        }
    }
}

/// Where the head ends (just past the blank line), if it has.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Parses a request head (the bytes up to and including the blank line). Headers are read
/// only to check they are text; none is needed.
pub fn parse_request(head: &[u8]) -> Result<Request, HttpError> {
    if head.len() > MAX_HEAD {
        return Err(HttpError::TooLarge);
    }
    let text = std::str::from_utf8(head).map_err(|_| HttpError::Malformed)?;
    let mut lines = text.split("\r\n");
    let line = lines.next().ok_or(HttpError::Malformed)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed);
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpError::Malformed);
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => return Err(HttpError::Method),
        _ => return Err(HttpError::Malformed),
    };
    if !target.starts_with('/') || target.len() > MAX_PATH || target.bytes().any(|b| b.is_ascii_control() || b == b'\\')
    {
        return Err(HttpError::Path);
    }
    for header in lines.take_while(|l| !l.is_empty()) {
        if !header.contains(':') || header.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(HttpError::Malformed);
        }
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    Ok(Request { method, path, query })
}

/// A response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, body: String) -> Self {
        Self { status, content_type: "application/json", body }
    }

    /// A plain-text response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self { status, content_type: "text/plain; charset=utf-8", body: body.into() }
    }

    /// Metrics in the OpenMetrics text format.
    pub fn metrics(body: String) -> Self {
        Self { status: 200, content_type: crate::metrics::CONTENT_TYPE, body }
    }

    /// The bytes on the wire; for `HEAD`, without the body.
    pub fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            _ => "Status",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if !head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests;
