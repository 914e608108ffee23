//! Line framing: the byte streams a connection runs over and the `\r\n` line connection
//! with deadlines.

use std::ops::{Deref, DerefMut};

use super::*;

/// A byte stream with an underlying TCP socket (for timeouts and shutdown).
pub trait Transport: Read + Write + Send {
    /// The TCP socket.
    fn socket(&self) -> &TcpStream;
    /// Sends a TLS close_notify if this is TLS (best effort).
    fn close_notify(&mut self) {}
    /// The TLS peer's certificate chain, if any.
    fn peer_certificates(&self) -> Option<Vec<rustls::pki_types::CertificateDer<'static>>> {
        None
    }
}

impl Transport for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }
}

/// TLS over TCP, either side (`rustls::ClientConnection` or `rustls::ServerConnection`).
impl<C, S> Transport for StreamOwned<C, TcpStream>
where
    C: DerefMut + Deref<Target = rustls::ConnectionCommon<S>> + Send,
    S: rustls::SideData,
{
    fn socket(&self) -> &TcpStream {
        &self.sock
    }
    fn close_notify(&mut self) {
        self.conn.send_close_notify();
        let _ = self.conn.complete_io(&mut self.sock);
    }
    fn peer_certificates(&self) -> Option<Vec<rustls::pki_types::CertificateDer<'static>>> {
        self.conn
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
    }
}

/// Maps an I/O error (possibly wrapping a rustls error) to a failure reason.
pub fn io_failure(e: &io::Error) -> FailureReason {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return FailureReason::Tls(TlsFailure::from_rustls(inner));
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => FailureReason::Timeout,
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => FailureReason::Closed,
        _ => FailureReason::Io(e.to_string()),
    }
}

/// A `\r\n` line connection over a [`Transport`], with deadlines.
pub struct LineConn<T: Transport> {
    inner: T,
    buf: Vec<u8>,
    eof: bool,
}

impl<T: Transport> fmt::Debug for LineConn<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineConn")
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl<T: Transport> LineConn<T> {
    /// Wraps a transport.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// The transport.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The transport, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Sends `CMD` or `CMD SP payload`, then `\r\n`, within `timeout`.
    pub fn send(
        &mut self,
        cmd: &str,
        payload: &str,
        timeout: Duration,
    ) -> Result<(), FailureReason> {
        let mut line = Vec::with_capacity(cmd.len() + payload.len() + 3);
        line.extend_from_slice(cmd.as_bytes());
        if !payload.is_empty() {
            line.push(b' ');
            line.extend_from_slice(payload.as_bytes());
        }
        line.extend_from_slice(b"\r\n");
        self.send_raw(&line, timeout)
    }

    /// Sends raw bytes (used by the fake node to inject garbage).
    pub fn send_raw(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), FailureReason> {
        let timeout = timeout.max(Duration::from_millis(1));
        let _ = self.inner.socket().set_write_timeout(Some(timeout));
        self.inner.write_all(bytes).map_err(|e| io_failure(&e))?;
        self.inner.flush().map_err(|e| io_failure(&e))
    }

    /// Reads one line (without `\r\n`) before `deadline`.
    pub fn read_line(&mut self, deadline: Instant) -> Result<Vec<u8>, FailureReason> {
        let mut scanned = 0;
        loop {
            if let Some(pos) = self.buf[scanned..].windows(2).position(|w| w == b"\r\n") {
                let end = scanned + pos;
                if end > MAX_LINE_LENGTH {
                    return Err(FailureReason::LineTooLong);
                }
                let line = self.buf[..end].to_vec();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            scanned = self.buf.len().saturating_sub(1);
            if self.buf.len() > MAX_LINE_LENGTH + 1 {
                return Err(FailureReason::LineTooLong);
            }
            if self.eof {
                return Err(FailureReason::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(FailureReason::Timeout);
            }
            let _ = self
                .inner
                .socket()
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))));
            let mut chunk = [0u8; 8192];
            match self.inner.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => match io_failure(&e) {
                    FailureReason::Timeout if Instant::now() < deadline => {}
                    other => return Err(other),
                },
            }
        }
    }

    /// Reads one message and splits it into command and payload. Non-UTF-8 lines and unknown
    /// command words are failures (Hathor closes without ERROR).
    pub fn read_message(&mut self, deadline: Instant) -> Result<(String, String), FailureReason> {
        let line = self.read_line(deadline)?;
        let text = String::from_utf8(line).map_err(|_| FailureReason::NotUtf8)?;
        let (cmd, payload) = match text.split_once(' ') {
            Some((c, p)) => (c.to_string(), p.to_string()),
            None => (text, String::new()),
        };
        if !is_known_command(&cmd) {
            let mut shown = cmd;
            shown.truncate(64);
            return Err(FailureReason::UnknownCommand(shown));
        }
        Ok((cmd, payload))
    }

    /// Sends `ERROR <text>` (best effort) and closes.
    pub fn fail(mut self, text: &str) {
        let _ = self.send("ERROR", text, Duration::from_secs(1));
        self.close();
    }

    /// Closes gracefully: TLS close_notify (best effort), shutdown of our sending side, then
    /// the remote's remaining bytes are read and dropped until it closes too (at most 500 ms
    /// and 64 KiB). Closing a socket with unread data makes the kernel send a reset, which
    /// can destroy our last line (an ERROR) before the remote reads it.
    pub fn close(mut self) {
        let socket = self.inner.socket();
        let _ = socket.set_write_timeout(Some(Duration::from_millis(500)));
        self.inner.close_notify();
        let socket = self.inner.socket();
        let _ = socket.shutdown(std::net::Shutdown::Write);
        let deadline = std::time::Instant::now() + Duration::from_millis(500);
        let mut drained = 0usize;
        let mut buf = [0u8; 4096];
        let mut reader = socket;
        while drained < 64 * 1024 {
            let now = std::time::Instant::now();
            if now >= deadline || reader.set_read_timeout(Some(deadline - now)).is_err() {
                break;
            }
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
        let _ = socket.shutdown(std::net::Shutdown::Both);
    }
}
