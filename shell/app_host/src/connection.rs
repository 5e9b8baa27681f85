//! The app host's end of its connection to the shell: the socketpair end it got as standard
//! input, speaking `protocol` frames of `protocol::wire` messages. Blocking, since an app host
//! runs a GTK loop, not an async runtime. The shell's end is `shell::ipc::serve`.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;

use protocol::frame::{FrameError, FrameLimits, FrameReader, FrameWriter};
use protocol::wire::{self, HostMsg, PROTOCOL, ShellMsg, WireError};

/// How much is read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Why the connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnError {
    /// The socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// What the system said.
        source: std::io::Error,
    },
    /// The shell sent a malformed frame, or a message would not fit in one.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A message could not be encoded or decoded.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// The connection's result.
pub type Result<T, E = ConnError> = std::result::Result<T, E>;

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> ConnError {
    move |source| ConnError::Io { what, source }
}

/// The app host's end of the connection: blocking, buffered writes that go out in one frame
/// per [`HostConnection::flush`]. [`HostConnection::split`] gives a reader and a writer for two
/// threads, which a host that publishes while it receives needs (else backpressure could
/// deadlock it against itself).
#[derive(Debug)]
pub struct HostConnection {
    stream: StdUnixStream,
    reader: FrameReader,
    writer: FrameWriter,
    inbox: VecDeque<ShellMsg>,
    chunk: Vec<u8>,
    scratch: Vec<u8>,
}

impl HostConnection {
    /// Wraps the inherited socket and says hello.
    pub fn new(stream: StdUnixStream) -> Result<Self> {
        let limits = FrameLimits::default();
        let mut conn = Self {
            stream,
            reader: FrameReader::new(limits),
            writer: FrameWriter::new(limits),
            inbox: VecDeque::new(),
            chunk: vec![0u8; READ_CHUNK],
            scratch: Vec::new(),
        };
        conn.send(&HostMsg::Hello { protocol: PROTOCOL, pid: std::process::id() })?;
        conn.flush()?;
        Ok(conn)
    }

    /// The socket passed as standard input by the shell.
    pub fn from_stdin() -> Result<Self> {
        use std::os::fd::AsFd;
        let fd = std::io::stdin().as_fd().try_clone_to_owned().map_err(io("duplicating stdin"))?;
        Self::new(StdUnixStream::from(fd))
    }

    /// Queues a message for the next flush.
    pub fn send(&mut self, msg: &HostMsg) -> Result<()> {
        self.scratch.clear();
        wire::encode(msg, &mut self.scratch)?;
        self.writer.push(&self.scratch)?;
        Ok(())
    }

    /// Writes everything queued, coalesced into as few frames as fit.
    pub fn flush(&mut self) -> Result<()> {
        let bytes = self.writer.take();
        self.stream.write_all(&bytes).map_err(io("writing to the shell"))
    }

    /// Ends the connection both ways (for both halves of a split one): the shell sees it close.
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Another handle on the connection's socket.
    pub fn socket(&self) -> Result<StdUnixStream> {
        self.stream.try_clone().map_err(io("cloning the socket"))
    }

    /// Splits into a sending half and a receiving half.
    pub fn split(self) -> Result<(HostConnection, HostConnection)> {
        let other = self.stream.try_clone().map_err(io("cloning the socket"))?;
        let limits = FrameLimits::default();
        let receiver = HostConnection {
            stream: other,
            reader: self.reader,
            writer: FrameWriter::new(limits),
            inbox: self.inbox,
            chunk: self.chunk,
            scratch: Vec::new(),
        };
        let sender = HostConnection {
            stream: self.stream,
            reader: FrameReader::new(limits),
            writer: self.writer,
            inbox: VecDeque::new(),
            chunk: Vec::new(),
            scratch: self.scratch,
        };
        Ok((sender, receiver))
    }

    /// The next message from the shell; `None` once the shell hung up.
    pub fn recv(&mut self) -> Result<Option<ShellMsg>> {
        loop {
            if let Some(m) = self.inbox.pop_front() {
                return Ok(Some(m));
            }
            let n = self.stream.read(&mut self.chunk).map_err(io("reading from the shell"))?;
            if n == 0 {
                return Ok(None);
            }
            self.reader.feed(&self.chunk[..n])?;
            while let Some(frame) = self.reader.next_frame()? {
                for bytes in frame {
                    self.inbox.push_back(wire::decode(&bytes)?);
                }
            }
        }
    }
}
